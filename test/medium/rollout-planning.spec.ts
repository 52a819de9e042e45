import { RolloutStrategySchema, ValidationError } from '@ferry/protocol';
import { BlobsModule } from '../../apps/server/src/blobs/blobs.module';
import { DeltasRepository } from '../../apps/server/src/deltas/deltas.repository';
import { DeltasService } from '../../apps/server/src/deltas/deltas.service';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { ReleasesService } from '../../apps/server/src/releases/releases.service';
import { RolloutPlanningService } from '../../apps/server/src/rollouts/rollout-planning.service';
import { RolloutRunningService } from '../../apps/server/src/rollouts/rollout-running.service';
import { RolloutTicker } from '../../apps/server/src/rollouts/rollout-ticker.service';
import { RolloutViewsService } from '../../apps/server/src/rollouts/rollout-views.service';
import { RolloutsModule } from '../../apps/server/src/rollouts/rollouts.module';
import { RolloutsRepository } from '../../apps/server/src/rollouts/rollouts.repository';
import { UpdatePoliciesService } from '../../apps/server/src/update-policies/update-policies.service';
import { Medium, pushRelease, startMedium } from '../support/medium';
import { DATABASE_KINDS } from '../support/test-server';
import { fleetOnV1 } from './rollout-fleet';

const strategy = (extra: object = {}) =>
  RolloutStrategySchema.parse({ batches: [1, '50%', '100%'], bakeSeconds: 0, ...extra });

describe.each(DATABASE_KINDS)('rollout planning service on %s', (kind) => {
  let m: Medium;
  let planning: RolloutPlanningService;

  beforeAll(async () => {
    m = await startMedium(kind, [BlobsModule, RolloutsModule], { replace: [[RolloutTicker, {}]] });
    planning = m.get(RolloutPlanningService);
  });
  afterAll(() => m.close());

  /** Marks the delta of each of `release`'s layers as built, `size` bytes. */
  const deltasReady = async (releaseId: string, size: number): Promise<void> => {
    for (const d of await m.get(DeltasService).listForRelease(releaseId))
      await m
        .get(DeltasRepository)
        .update(d.key, { state: 'ready', digest: `sha256:${'d'.repeat(64)}`, size });
  };

  it('plans batches of the devices that need the release, online first, and the bytes each would download', async () => {
    const f = await fleetOnV1(m, 5);
    const [d1, d2, d3, d4, d5] = f.uuids;
    await m.get(DevicesService).tag(d3!, { pinned: 'true' });
    await f.report(d4!, 'running', f.v2);
    const plan = await planning.plan(f.slug, { releaseId: f.v2, strategy: strategy(), dryRun: true });
    expect(plan.excluded).toEqual({ pinned: [d3], upToDate: [d4], filteredOut: 0 });
    // No update policy: nothing limits when the devices are done.
    expect(plan.batches).toEqual([
      { number: 1, size: 1, doneBy: null },
      { number: 2, size: 1, doneBy: null },
      { number: 3, size: 1, doneBy: null },
    ]);
    // One device per batch, drawn from the rollout's seed (kept in the plan's strategy).
    expect(plan.devices.map((d) => d.batch)).toEqual([1, 2, 3]);
    expect(plan.devices.map((d) => d.uuid).sort()).toEqual([d1, d2, d5].sort());
    expect(plan.strategy.seed).toEqual(expect.any(Number));
    const again = await planning.plan(f.slug, {
      releaseId: f.v2,
      strategy: strategy({ seed: plan.strategy.seed }),
      dryRun: true,
    });
    expect(again.devices.map((d) => d.uuid)).toEqual(plan.devices.map((d) => d.uuid));
    // No delta is built yet: every device would download the gzip'd layer of v2.
    const v2 = await m.get(ReleasesService).get(f.v2);
    const gzip = v2.services[0]!.layers[0]!.gzipSize;
    expect(plan.devices.map((d) => [d.projectedBytes, d.fullBytes])).toEqual([
      [gzip, gzip],
      [gzip, gzip],
      [gzip, gzip],
    ]);
    expect(plan.bytes).toEqual({ projected: 3 * gzip, full: 3 * gzip });
    const tagged = await planning.plan(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      tagFilter: { name: 'pinned' },
      dryRun: true,
    });
    expect(tagged.devices).toEqual([]);
    expect(tagged.excluded).toEqual({ pinned: [d3], upToDate: [], filteredOut: 4 });
  });

  it("projects when each batch is done under the devices' update policies (rate caps, windows)", async () => {
    const f = await fleetOnV1(m, 2);
    const [d1, d2] = f.uuids;
    m.clock.set('2026-01-14T10:00:00.000Z'); // a Wednesday
    const v2 = await m.get(ReleasesService).get(f.v2);
    const gzip = v2.services[0]!.layers[0]!.gzipSize;
    const policies = m.get(UpdatePoliciesService);
    // The fleet installs at night in Berlin; d2 sits on a metered link: 1 byte per second, downloads at
    // lunch time (UTC) only, and installs at any time.
    await policies.set(f.slug, { maintenanceWindows: ['daily 02:00-04:00 Europe/Berlin'] });
    await policies.set(f.slug, {
      device: d2!,
      downloadRate: 1,
      downloadWindows: ['Mon-Fri 12:00-13:00 UTC'],
      maintenanceWindows: [],
    });
    const plan = await planning.plan(f.slug, {
      releaseId: f.v2,
      strategy: strategy({ batches: [1, '100%'], seed: 7 }),
      dryRun: true,
    });
    const doneBy = Object.fromEntries(plan.devices.map((d) => [d.uuid, d.doneBy]));
    // d1: no cap, so only its window: 02:00 CET = 01:00 UTC the next day.
    expect(doneBy[d1!]).toBe('2026-01-15T01:00:00.000Z');
    // d2: waits for 12:00 UTC, then takes one second per byte of the gzip'd layer.
    expect(doneBy[d2!]).toBe(new Date(Date.parse('2026-01-14T12:00:00.000Z') + gzip * 1000).toISOString());
    const batchOf = (uuid: string): number => plan.devices.find((d) => d.uuid === uuid)!.batch;
    expect(plan.batches.find((b) => b.number === batchOf(d2!))!.doneBy).toBe(doneBy[d2!]);
    expect(plan.batches.find((b) => b.number === batchOf(d1!))!.doneBy).toBe(doneBy[d1!]);
  });

  it('refuses a release of another fleet and batch ends that shrink', async () => {
    const f = await fleetOnV1(m, 1);
    const other = await m.get(FleetsService).create({ name: 'other', arch: 'amd64' });
    const foreign = await pushRelease(m, other.slug, 1, { 'app/version': 'other\n' });
    await expect(
      planning.plan(f.slug, { releaseId: foreign.id, strategy: strategy(), dryRun: true }),
    ).rejects.toThrow(ValidationError);
    await expect(
      planning.plan(f.slug, { releaseId: f.v2, strategy: strategy({ batches: [5, 2] }), dryRun: true }),
    ).rejects.toThrow(/cumulative/);
  });

  it('asks for the deltas from the release the devices run, and a batch waits for them only when told to', async () => {
    const f = await fleetOnV1(m, 2);
    const plan = await planning.plan(f.slug, { releaseId: f.v2, strategy: strategy(), dryRun: true });
    await planning.planDeltas(plan);
    const deltas = await m.get(DeltasService).listForRelease(f.v2);
    const v1 = await m.get(ReleasesService).get(f.v1);
    expect(deltas).toHaveLength(1);
    expect(deltas[0]).toMatchObject({ state: 'queued', bases: v1.services[0]!.layers.map((l) => l.diffId) });
    const record = (waitForDeltasSeconds: number) => ({
      ...plan,
      id: 'r',
      state: 'running' as const,
      reason: null,
      trigger: 'manual' as const,
      strategy: strategy({ waitForDeltasSeconds }),
      currentBatch: 0,
      projectedBytes: 0,
      fullBytes: 0,
      createdAt: m.clock.iso(),
      updatedAt: m.clock.iso(),
      finishedAt: null,
    });
    expect(await planning.deltasPending(record(60))).toBe(true);
    expect(await planning.deltasPending(record(0))).toBe(false);
    await deltasReady(f.v2, 10);
    expect(await planning.deltasPending(record(60))).toBe(false);
  });

  it('projects again, as devices are told, what a delta built since the plan saves', async () => {
    const f = await fleetOnV1(m, 3);
    const [d1, d2, d3] = f.uuids;
    const { rollout, plan } = await m
      .get(RolloutRunningService)
      .create(f.slug, { releaseId: f.v2, strategy: strategy(), dryRun: false });
    const full = plan.bytes.full / 3;
    expect(plan.bytes.projected).toBe(3 * full);
    await deltasReady(f.v2, 7);
    const v2 = await m.get(ReleasesService).get(f.v2);
    await planning.reproject(rollout.id, v2, [d2!, d3!]);
    const devices = await m.get(RolloutViewsService).devices(rollout.id);
    // The list is in batch order, drawn from the rollout's seed: judge each device by its uuid.
    const projected = new Map(devices.map((d) => [d.uuid, d.projectedBytes]));
    expect([d1, d2, d3].map((uuid) => projected.get(uuid!))).toEqual([full, 7, 7]);
    expect((await m.get(RolloutsRepository).find(rollout.id))?.projectedBytes).toBe(full + 14);
    await m.get(RolloutRunningService).act(rollout.id, 'abort');
  });
});
