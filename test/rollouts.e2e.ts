import { Device, Release, RolloutPlan, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { TestFleet, createFleet, pushRelease } from './support/mqtt-devices';
import {
  ServerPlace,
  collectEvents,
  json,
  layersOf,
  newPlace,
  startServerAt,
  until,
  waitForRollout,
} from './support/simulator-harness';
import { DATABASE_KINDS, TestServer } from './support/test-server';

type Server = TestServer & { remove: () => Promise<void> };

/** A fleet of simulated devices all running `v1`, as the server sees them. */
async function fleetOn(
  server: Server,
  name: string,
  count: number,
  behaviour: (uuid: string, releaseId: string) => 'ok' | 'fail' | 'hang' | 'crash' | 'offline' = () => 'ok',
  crashAfterMs = 1000,
): Promise<{ fleet: TestFleet; v1: Release; simulator: Simulator }> {
  const fleet = await createFleet(server, name);
  const v1 = await pushRelease(server, fleet, `${name} v1`);
  const simulator: Simulator = await Simulator.start({
    url: server.url,
    mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
    provisioningKey: fleet.provisioningKey,
    count,
    stepMs: 30,
    crashAfterMs,
    running: { id: v1.id, layers: layersOf(v1) },
    behaviour: (index, releaseId) => behaviour(simulator.devices[index]?.uuid ?? '', releaseId),
  });
  await until(
    async () => {
      const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
      return devices.length === count && devices.every((d) => d.releaseId === v1.id) ? true : undefined;
    },
    15_000,
    `${count} devices reporting v1`,
  );
  return { fleet, v1, simulator };
}

describe.each(DATABASE_KINDS)('staged rollouts with simulated devices (%s)', (kind) => {
  let place: ServerPlace;
  let server: Server;
  const simulators: Simulator[] = [];
  const streams: (() => void)[] = [];

  beforeAll(async () => {
    place = await newPlace({}, kind);
    server = await startServerAt(place);
  });
  afterAll(async () => {
    for (const stop of streams) stop();
    await Promise.all(simulators.map((s) => s.stop()));
    await server.close();
    await server.remove();
  });

  it('pauses a 50-device rollout when a batch breaches the failure threshold, rolls failed devices back, and reports why', async () => {
    const failing = new Set<string>();
    const { fleet, v1, simulator } = await fleetOn(server, 'Threshold', 50, (uuid) =>
      failing.has(uuid) ? 'fail' : 'ok',
    );
    simulators.push(simulator);
    const v2 = await pushRelease(server, fleet, 'Threshold v2');
    const strategy = {
      batches: [1, '10%', '50%', '100%'],
      bakeSeconds: 0.5,
      maxFailurePercent: 20,
      onFailure: 'pause',
      deviceTimeoutSeconds: 20,
      rollback: 'failed',
    };
    const dry = await json<{ dryRun: true; plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy, dryRun: true },
      }),
      200,
    );
    expect(dry.plan.batches.map((b) => b.size)).toEqual([1, 4, 20, 25]);
    expect(dry.plan.bytes.projected).toBeGreaterThan(0);
    expect(dry.plan.devices.every((d) => d.fromReleaseId === v1.id && d.projectedBytes > 0)).toBe(true);
    expect(await json<RolloutView[]>(await server.api(`/v1/fleets/${fleet.slug}/rollouts`))).toEqual([]);
    // 6 of the 20 devices of batch 3 fail the new release: 30 % > 20 %.
    for (const d of dry.plan.devices.filter((p) => p.batch === 3).slice(0, 6)) failing.add(d.uuid);

    // The dry run's seed gives the started rollout exactly the plan that was shown.
    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy: { ...strategy, seed: dry.plan.strategy.seed } },
      }),
      201,
    );
    expect(created.strategy.seed).toBe(dry.plan.strategy.seed);
    expect(created.plan.devices.map((d) => [d.uuid, d.batch])).toEqual(
      dry.plan.devices.map((d) => [d.uuid, d.batch]),
    );
    const conflict = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
      method: 'POST',
      json: { releaseId: v2.id, strategy },
    });
    expect(conflict.status).toBe(409);

    const paused = await waitForRollout(server, created.id, (r) => r.state === 'paused', 45_000, 'paused');
    // The batch fails as soon as its failures pass 20 % (5 of 20), without waiting for the rest.
    expect(paused.reason).toMatch(/^batch 3 failed: (25|30) % of its devices failed \(more than 20 %\)$/);
    expect(paused.batches.map((b) => b.state)).toEqual(['passed', 'passed', 'failed', 'pending']);
    expect(paused.batches[3]?.counts).toEqual({ pending: 25 });
    expect(paused.bytes.sent).toBeGreaterThan(0);
    expect(paused.bytes.full).toBe(dry.plan.bytes.full);
    expect(paused.history.length).toBeGreaterThan(3);

    // Devices already told are still judged while paused; failed ones are sent back to v1 and
    // confirm it; nobody in batch 4 was told anything.
    const settled = await waitForRollout(
      server,
      created.id,
      (r) => (r.counts.rolled_back ?? 0) === 6 && (r.batches[2]?.counts.verifying ?? 0) === 14,
      20_000,
      'failed devices rolled back',
    );
    expect(settled.failures.map((f) => f.uuid).sort()).toEqual([...failing].sort());
    expect(settled.failures.every((f) => /simulated failure/.test(f.reason ?? ''))).toBe(true);
    expect(settled.state).toBe('paused');
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    for (const uuid of failing) expect(devices.find((d) => d.uuid === uuid)?.targetReleaseId).toBe(v1.id);
    const batch4 = new Set(dry.plan.devices.filter((d) => d.batch === 4).map((d) => d.uuid));
    expect(
      devices
        .filter((d) => batch4.has(d.uuid))
        .every((d) => d.targetReleaseId === null && d.releaseId === v1.id),
    ).toBe(true);

    const aborted = await json<RolloutView>(
      await server.api(`/v1/rollouts/${created.id}/abort`, { method: 'POST' }),
      200,
    );
    expect(aborted.state).toBe('aborted');
    expect(aborted.batches[3]?.state).toBe('canceled');
    expect(aborted.counts.canceled).toBe(25);
    expect((await server.api(`/v1/rollouts/${created.id}/resume`, { method: 'POST' })).status).toBe(409);
  });

  it('completes a clean rollout, leaves pinned devices alone, counts bytes, and tracks the latest release', async () => {
    const { fleet, v1, simulator } = await fleetOn(server, 'Clean', 10);
    simulators.push(simulator);
    const pinned = simulator.devices[9]!.uuid;
    await server.api(`/v1/devices/${pinned}/tags`, { method: 'POST', json: { tags: { pinned: 'true' } } });
    const v2 = await pushRelease(server, fleet, 'Clean v2');
    const events = collectEvents(server, fleet.id);
    streams.push(events.stop);
    const strategy = {
      batches: [1, '50%', '100%'],
      bakeSeconds: 0.3,
      deviceTimeoutSeconds: 20,
      maxFailurePercent: 0,
    };
    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy },
      }),
      201,
    );
    expect(created.plan.excluded.pinned).toEqual([pinned]);
    expect(created.total).toBe(9);
    const done = await waitForRollout(
      server,
      created.id,
      (r) => r.state === 'completed',
      30_000,
      'completed',
    );
    expect(done.counts).toEqual({ succeeded: 9 });
    expect(done.batches.map((b) => [b.size, b.state])).toEqual([
      [1, 'passed'],
      [4, 'passed'],
      [4, 'passed'],
    ]);
    // No delta worker runs here: every device fetched the full gzip'd layer, as projected.
    expect(done.bytes.sent).toBe(done.bytes.projected);
    expect(done.bytes.full).toBe(done.bytes.projected);
    expect(simulator.bytesDownloaded()).toBe(done.bytes.sent);
    // Every change went out on the event stream too, ending with the completed rollout.
    const updates = await until(
      async () => {
        const list = events
          .received()
          .filter((e) => e.type === 'rollout.updated' && e.data.id === created.id);
        return list.some((e) => e.data.state === 'completed') ? list : undefined;
      },
      5000,
      'rollout.updated events on /v1/events',
    );
    events.stop();
    expect(updates.length).toBeGreaterThan(3);
    expect(updates.at(-1)?.data.counts).toEqual({ succeeded: 9 });
    expect(updates.some((e) => (e.data.counts as Record<string, number>).verifying)).toBe(true);
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    expect(devices.filter((d) => d.releaseId === v2.id)).toHaveLength(9);
    expect(devices.find((d) => d.uuid === pinned)?.releaseId).toBe(v1.id);

    // Track latest: the next push starts a rollout with the fleet's default strategy by itself.
    const settings = await json<{ trackLatest: boolean }>(
      await server.api(`/v1/fleets/${fleet.slug}`, {
        method: 'PATCH',
        json: {
          trackLatest: true,
          defaultStrategy: { batches: ['50%', '100%'], bakeSeconds: 0.2, deviceTimeoutSeconds: 20 },
        },
      }),
      200,
    );
    expect(settings.trackLatest).toBe(true);
    expect(
      (await server.api(`/v1/fleets/${fleet.slug}`, { method: 'PATCH', json: { trackLatest: 'yes' } }))
        .status,
    ).toBe(400);
    const v3 = await pushRelease(server, fleet, 'Clean v3');
    const auto = await until(
      async () => {
        const list = await json<RolloutView[]>(await server.api(`/v1/fleets/${fleet.slug}/rollouts`));
        return list.find((r) => r.releaseId === v3.id);
      },
      5000,
      'track-latest rollout',
    );
    expect(auto.trigger).toBe('track-latest');
    const autoDone = await waitForRollout(
      server,
      auto.id,
      (r) => r.state === 'completed',
      30_000,
      'track-latest completed',
    );
    expect(autoDone.counts).toEqual({ succeeded: 9 });
  });

  it('refuses bad strategies with 400 and unknown rollouts with 404', async () => {
    const fleet = await createFleet(server, 'Bad');
    const v1 = await pushRelease(server, fleet, 'Bad v1');
    for (const strategy of [
      { batches: [5, 2] },
      { batches: ['150%'] },
      { maxFailurePercent: -1 },
      { onFailure: 'explode' },
    ]) {
      const response = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v1.id, strategy },
      });
      expect(response.status).toBe(400);
    }
    expect((await server.api('/v1/rollouts/nope')).status).toBe(404);
    expect((await server.api('/v1/rollouts/nope/pause', { method: 'POST' })).status).toBe(404);
  });
});

describe.each(DATABASE_KINDS)('a rollout across a server restart (%s)', (kind) => {
  it('carries on where the database says it was after the server is closed mid-rollout and started again', async () => {
    const place = await newPlace({}, kind);
    let server = await startServerAt(place);
    const { fleet, simulator } = await fleetOn(server, 'Restart', 12);
    try {
      const v2 = await pushRelease(server, fleet, 'Restart v2');
      const created = await json<RolloutView>(
        await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
          method: 'POST',
          json: {
            releaseId: v2.id,
            strategy: {
              batches: [2, '50%', '100%'],
              bakeSeconds: 1.5,
              deviceTimeoutSeconds: 30,
              maxFailurePercent: 0,
            },
          },
        }),
        201,
      );
      const mid = await waitForRollout(
        server,
        created.id,
        (r) => r.currentBatch === 2,
        20_000,
        'batch 2 started',
      );
      expect(mid.batches[0]?.state).toBe('passed');
      await server.close();
      // The devices lose the broker and the API; they keep trying, as agents do.
      await new Promise((r) => setTimeout(r, 500));
      server = await startServerAt(place);
      const done = await waitForRollout(
        server,
        created.id,
        (r) => r.state === 'completed',
        40_000,
        'completed after restart',
      );
      expect(done.counts).toEqual({ succeeded: 12 });
      expect(done.batches.map((b) => b.state)).toEqual(['passed', 'passed', 'passed']);
      const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
      expect(devices.every((d) => d.releaseId === v2.id)).toBe(true);
    } finally {
      await simulator.stop();
      await server.close();
      await server.remove();
    }
  });
});

describe('devices that hang, go offline or crash, on PostgreSQL', () => {
  it('times out silent and offline devices, fails a device that crashes while baking, and rolls back what it can', async () => {
    const place = await newPlace({}, 'postgres');
    const server = await startServerAt(place);
    const roles = new Map<string, 'hang' | 'offline' | 'crash'>();
    const { fleet, v1, simulator } = await fleetOn(
      server,
      'Flaky',
      10,
      (uuid) => roles.get(uuid) ?? 'ok',
      400,
    );
    try {
      const [hang, offline, crash] = simulator.devices.map((d) => d.uuid);
      roles.set(hang!, 'hang').set(offline!, 'offline').set(crash!, 'crash');
      const v2 = await pushRelease(server, fleet, 'Flaky v2');
      const created = await json<RolloutView>(
        await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
          method: 'POST',
          json: {
            releaseId: v2.id,
            strategy: {
              batches: ['100%'],
              bakeSeconds: 1.5,
              deviceTimeoutSeconds: 3,
              maxFailurePercent: 40,
              rollback: 'failed',
            },
          },
        }),
        201,
      );
      const done = await waitForRollout(
        server,
        created.id,
        (r) => r.state === 'completed',
        30_000,
        'completed',
      );
      const byUuid = new Map(done.failures.map((f) => [f.uuid, f]));
      expect(done.counts.succeeded).toBe(7);
      expect(byUuid.get(hang!)?.reason).toMatch(/no running report within 3 s \(last: downloading\)/);
      expect(byUuid.get(offline!)?.reason).toMatch(/no running report within 3 s/);
      // "failed while baking: " when a tick saw it running first; under load one tick can see
      // only the crash (the engine spec covers the prefix with a fake clock).
      expect(byUuid.get(crash!)?.reason).toMatch(/^(failed while baking: )?service main crashed after start/);
      // The crashed device is back on v1; the silent ones never confirm their rollback.
      const rolledBack = await waitForRollout(
        server,
        created.id,
        (r) => r.failures.some((f) => f.uuid === crash && f.state === 'rolled_back'),
        10_000,
        'crashed device rolled back',
      );
      expect(
        rolledBack.failures
          .filter((f) => f.state === 'rolling_back')
          .map((f) => f.uuid)
          .sort(),
      ).toEqual([hang, offline].sort());
      const device = await json<Device>(await server.api(`/v1/devices/${crash}`));
      expect(device.releaseId).toBe(v1.id);
    } finally {
      await simulator.stop();
      await server.close();
      await server.remove();
    }
  });
});
