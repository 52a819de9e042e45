import { sql } from 'kysely';
import { ConflictError, RolloutStrategySchema } from '@ferry/protocol';
import { BlobsModule } from '../../apps/server/src/blobs/blobs.module';
import { TransactionRepository } from '../../apps/server/src/database/transaction.repository';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { RolloutNoticesRepository } from '../../apps/server/src/rollouts/rollout-notices.repository';
import { RolloutRunningService } from '../../apps/server/src/rollouts/rollout-running.service';
import { RolloutTicker } from '../../apps/server/src/rollouts/rollout-ticker.service';
import { RolloutSamplesRepository } from '../../apps/server/src/rollouts/rollout-samples.repository';
import { RolloutViewsService } from '../../apps/server/src/rollouts/rollout-views.service';
import { RolloutsModule } from '../../apps/server/src/rollouts/rollouts.module';
import { RolloutsRepository } from '../../apps/server/src/rollouts/rollouts.repository';
import { Medium, startMedium } from '../support/medium';
import { DATABASE_KINDS } from '../support/test-server';
import { fleetOnV1, told, toldNotices } from './rollout-fleet';

const strategy = (extra: object = {}) =>
  RolloutStrategySchema.parse({ batches: [1, '100%'], bakeSeconds: 60, deviceTimeoutSeconds: 300, ...extra });

/**
 * The fleet's devices with the one batch 1 told first at their head: batch members are drawn from
 * the rollout's seed, not taken in the order the fleet made them.
 */
function batchOrder(f: { uuids: string[]; events: Parameters<typeof told>[0] }): string[] {
  const first = told(f.events)[0]!.uuid as string;
  return [first, ...f.uuids.filter((uuid) => uuid !== first)];
}

describe.each(DATABASE_KINDS)('rollout running service on %s', (kind) => {
  let m: Medium;
  let running: RolloutRunningService;
  let views: RolloutViewsService;

  beforeAll(async () => {
    // The test takes every step itself: no ticker.
    m = await startMedium(kind, [BlobsModule, RolloutsModule], { replace: [[RolloutTicker, {}]] });
    running = m.get(RolloutRunningService);
    views = m.get(RolloutViewsService);
  });
  afterAll(() => m.close());

  it('creates a rollout at the clock time, writes its first sample and tells batch 1 its target', async () => {
    const f = await fleetOnV1(m, 3);
    const startedAt = m.clock.iso();
    const { plan, rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      dryRun: false,
    });
    const [d1, d2] = batchOrder(f);
    expect(plan.batches.map((b) => b.size)).toEqual([1, 2]);
    expect(rollout.createdAt).toBe(startedAt);
    const view = await views.view(rollout.id);
    expect(view.state).toBe('running');
    expect(view.batches.map((b) => b.state)).toEqual(['running', 'pending']);
    expect(view.counts).toEqual({ notified: 1, pending: 2 });
    expect(view.history.map((h) => h.counts)).toEqual([{ pending: 3 }, { notified: 1, pending: 2 }]);
    expect(told(f.events)).toEqual([{ uuid: d1, releaseId: f.v2 }]);
    expect((await m.get(DevicesService).get(d1!)).targetReleaseId).toBe(f.v2);
    expect((await m.get(DevicesService).get(d2!)).targetReleaseId).toBeNull();
    expect(await m.get(RolloutNoticesRepository).pending(rollout.id)).toEqual([]);
    await running.act(rollout.id, 'abort');
  });

  it('moves on by the clock: a device up on the release bakes, the batch passes once the bake time is over', async () => {
    const f = await fleetOnV1(m, 3);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      dryRun: false,
    });
    const [d1, d2, d3] = batchOrder(f);
    m.clock.advance(1000);
    await f.report(d1!, 'running', f.v2);
    await running.step(rollout.id);
    let view = await views.view(rollout.id);
    expect(view.batches[0]).toMatchObject({
      state: 'baking',
      bakeUntil: new Date(m.clock.nowMs() + 60_000).toISOString(),
    });
    m.clock.advance(59_000);
    await running.step(rollout.id);
    expect((await views.view(rollout.id)).batches[0]?.state).toBe('baking');
    m.clock.advance(1000);
    await running.step(rollout.id);
    view = await views.view(rollout.id);
    expect(view.batches.map((b) => b.state)).toEqual(['passed', 'running']);
    expect(view.counts).toEqual({ succeeded: 1, notified: 2 });
    expect(told(f.events)[0]?.uuid).toBe(d1);
    expect(
      told(f.events)
        .slice(1)
        .map((t) => t.uuid),
    ).toEqual(expect.arrayContaining([d2, d3]));
    const updates = f.events.filter((e) => e.type === 'rollout.updated');
    expect(updates.at(-1)?.data).toMatchObject({ state: 'running', currentBatch: 2, changedCount: 3 });
    // Nobody reports: both time out 300 s after they were told, the batch fails, and they are told
    // to go back to the release they ran (the default rollback of failed devices).
    m.clock.advance(300_000);
    await running.step(rollout.id);
    view = await views.view(rollout.id);
    expect(view.counts).toEqual({ succeeded: 1, rolling_back: 2 });
    expect(view.state).toBe('paused');
    expect(view.failures.map((x) => x.reason)).toEqual([
      expect.stringMatching(/no running report within 300 s/),
      expect.stringMatching(/no running report within 300 s/),
    ]);
    const rollbacks = told(f.events).slice(3);
    expect(rollbacks).toHaveLength(2);
    expect(rollbacks).toEqual(
      expect.arrayContaining([
        { uuid: d2, releaseId: f.v1 },
        { uuid: d3, releaseId: f.v1 },
      ]),
    );
    await running.act(rollout.id, 'abort');
  });

  it('sees a report that reaches the database after a newer one of another device (replicas flush on their own)', async () => {
    const f = await fleetOnV1(m, 3);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy({ batches: [2, '100%'] }),
      dryRun: false,
    });
    const [d1, d2] = told(f.events).map((t) => t.uuid as string);
    const state = m.get(DeviceStateService);
    // Replica A took in d1's report first but flushes it after replica B flushed d2's, taken in later.
    m.clock.advance(1000);
    const takenByA = m.clock.iso();
    m.clock.advance(1000);
    await f.report(d2!, 'running', f.v2);
    await running.step(rollout.id);
    await running.step(rollout.id);
    expect((await views.view(rollout.id)).counts).toMatchObject({ verifying: 1, notified: 1 });
    state.report(d1!, { status: 'running', releaseId: f.v2 }, takenByA);
    await state.flush();
    await running.step(rollout.id);
    const view = await views.view(rollout.id);
    expect(view.counts).toEqual({ verifying: 2, pending: 1 });
    expect(view.batches[0]?.state).toBe('baking');
    await running.act(rollout.id, 'abort');
  });

  it('refuses what the transition table does not allow, and an abort cancels devices not yet told', async () => {
    const f = await fleetOnV1(m, 2);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      dryRun: false,
    });
    await running.act(rollout.id, 'pause');
    await expect(running.act(rollout.id, 'pause')).rejects.toThrow(ConflictError);
    await running.act(rollout.id, 'abort');
    const view = await views.view(rollout.id);
    expect(view.state).toBe('aborted');
    expect(view.counts).toEqual({ notified: 1, canceled: 1 });
    await expect(running.act(rollout.id, 'resume')).rejects.toThrow(/cannot go from aborted to running/);
  });

  it('refuses a second active rollout in a fleet, unless it supersedes the first', async () => {
    const f = await fleetOnV1(m, 1);
    const input = { releaseId: f.v2, strategy: strategy(), dryRun: false };
    const { rollout: first } = await running.create(f.slug, input);
    await expect(running.create(f.slug, input)).rejects.toThrow(ConflictError);
    const { rollout: second } = await running.create(f.slug, input, {
      supersede: true,
      trigger: 'track-latest',
    });
    expect((await views.view(first.id)).reason).toBe('superseded by release v2');
    expect((await views.view(first.id)).state).toBe('aborted');
    expect((await views.view(second.id)).trigger).toBe('track-latest');
    await running.act(second.id, 'abort');
  });

  it("refreshes PostgreSQL's statistics of rollout devices once a large rollout is written", async () => {
    const rollouts = m.get(RolloutsRepository);
    const analyzed = async (): Promise<string | null> => {
      if (kind !== 'postgres') return null;
      const { rows } = await sql<{ at: string | null }>`
        select last_analyze::text as at from pg_stat_user_tables where relname = 'rollout_devices'`.execute(
        m.db,
      );
      return rows[0]?.at ?? null;
    };
    const before = await analyzed();
    await rollouts.refreshStatistics(999);
    expect(await analyzed()).toBe(before);
    await rollouts.refreshStatistics(1000);
    if (kind === 'postgres') expect(await analyzed()).not.toBe(before);
  });

  it('sends again, on the next step, the notices a crash left unsent', async () => {
    const f = await fleetOnV1(m, 2);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      dryRun: false,
    });
    const [d1] = batchOrder(f);
    expect(told(f.events)).toHaveLength(1);
    const issuedAt = m.clock.iso();
    m.clock.advance(5_000);
    // What the ticker does at start: the embedded broker may have lost its retained notices.
    await running.resendInFlight(rollout.id);
    expect(await m.get(RolloutNoticesRepository).pending(rollout.id)).toEqual([
      { releaseId: f.v2, issuedAt, uuids: [d1] },
    ]);
    await running.step(rollout.id);
    // The very same notice again (the step's time, not the re-send's): a device sees one notice.
    expect(toldNotices(f.events)).toEqual([
      { uuid: d1, releaseId: f.v2, issuedAt },
      { uuid: d1, releaseId: f.v2, issuedAt },
    ]);
    expect(await m.get(RolloutNoticesRepository).pending(rollout.id)).toEqual([]);
    await running.act(rollout.id, 'abort');
  });

  it('tells a connected device that stays silent again, the very same notice, less and less often; not one offline or one that moved on', async () => {
    const f = await fleetOnV1(m, 3);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy({ batches: [2, '100%'] }),
      dryRun: false,
    });
    const [d1, d2] = told(f.events).map((t) => t.uuid as string);
    const issuedAt = m.clock.iso();
    await m.db.updateTable('devices').set({ online: 1 }).where('uuid', '=', d1!).execute();
    await m.db.updateTable('devices').set({ online: 0 }).where('uuid', '=', d2!).execute();
    const noticesOf = (uuid: string) => toldNotices(f.events).filter((n) => n.uuid === uuid);
    // FERRY_NOTICE_RESEND_SECONDS (30): not before.
    m.clock.advance(29_000);
    await running.step(rollout.id);
    expect(noticesOf(d1!)).toHaveLength(1);
    m.clock.advance(2_000);
    await running.step(rollout.id);
    expect(noticesOf(d1!)).toEqual([
      { uuid: d1, releaseId: f.v2, issuedAt },
      { uuid: d1, releaseId: f.v2, issuedAt },
    ]);
    // Offline: it gets the retained notice when it reconnects.
    expect(noticesOf(d2!)).toHaveLength(1);
    // Then 60 s later (twice as long), not at 30.
    m.clock.advance(30_000);
    await running.step(rollout.id);
    expect(noticesOf(d1!)).toHaveLength(2);
    m.clock.advance(30_000);
    await running.step(rollout.id);
    expect(noticesOf(d1!)).toHaveLength(3);
    // It answers: no more.
    await f.report(d1!, 'downloading', f.v2);
    await running.step(rollout.id);
    // Past every re-send it would have had, still inside its deadline.
    m.clock.advance(150_000);
    await running.step(rollout.id);
    expect(noticesOf(d1!)).toHaveLength(3);
    expect(noticesOf(d2!)).toHaveLength(1);
    await running.act(rollout.id, 'abort');
  });

  it('writes a decision, its notices and its sample together or not at all', async () => {
    const f = await fleetOnV1(m, 2);
    const { rollout } = await running.create(f.slug, {
      releaseId: f.v2,
      strategy: strategy(),
      dryRun: false,
    });
    const [, d2] = batchOrder(f);
    const rollouts = m.get(RolloutsRepository);
    const stored = (await rollouts.find(rollout.id))!;
    const decision = {
      rollout: null,
      batches: [],
      devices: [
        {
          uuid: d2!,
          state: 'notified' as const,
          reason: null,
          bytesSent: 0,
          notifiedAt: m.clock.iso(),
          deadline: null,
          notify: f.v2,
        },
      ],
    };
    const write = (expected: string, fail: boolean) =>
      m.get(TransactionRepository).run(async (trx) => {
        await rollouts.apply(rollout.id, expected, decision, m.clock.iso(), trx);
        await m
          .get(RolloutNoticesRepository)
          .enqueue(rollout.id, [{ uuid: d2!, releaseId: f.v2 }], m.clock.iso(), trx);
        await m.get(RolloutSamplesRepository).add(rollout.id, m.clock.iso(), { notified: 2 }, trx);
        if (fail) throw new Error('crash before commit');
      });
    const unchanged = async (): Promise<void> => {
      const view = await views.view(rollout.id);
      expect(view.counts).toEqual({ notified: 1, pending: 1 });
      expect(view.history).toHaveLength(2);
      expect(await m.get(RolloutNoticesRepository).pending(rollout.id)).toEqual([]);
      expect((await rollouts.find(rollout.id))?.updatedAt).toBe(stored.updatedAt);
    };
    // A decision made from a snapshot another writer changed since: refused, nothing written.
    await expect(write('1999-01-01T00:00:00.000Z', false)).rejects.toThrow(ConflictError);
    await unchanged();
    await expect(write(stored.updatedAt, true)).rejects.toThrow('crash before commit');
    await unchanged();
    await running.act(rollout.id, 'abort');
  });
});
