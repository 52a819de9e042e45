import {
  ConflictError,
  DOWNLOAD_WAIT,
  MAINTENANCE_WAIT,
  RolloutStrategy,
  RolloutStrategySchema,
} from '@ferry/protocol';
import { GroupHealth } from './health-comparison';
import {
  Decision,
  EngineReport,
  RolloutSnapshot,
  decide,
  healthWindowNeeded,
  operatorAction,
} from './rollout-engine';
import { BATCH_TRANSITIONS, DEVICE_TRANSITIONS, ROLLOUT_TRANSITIONS, canTransition } from './rollout-states';
import { resolveBatches, checkBatchSpec, selectDevices } from './rollout-planner';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const NEW = 'release-new';
const OLD = 'release-old';

/** A rollout kept in memory the way the database keeps it, driven by a fake clock. */
class FakeRollout {
  now = T0;
  snapshot: RolloutSnapshot;
  notices: { uuid: string; releaseId: string }[] = [];

  constructor(batchSizes: number[], strategy: Partial<RolloutStrategy> = {}, from: string | null = OLD) {
    let n = 0;
    this.snapshot = {
      rollout: {
        id: 'r1',
        state: 'running',
        releaseId: NEW,
        strategy: RolloutStrategySchema.parse({
          bakeSeconds: 60,
          deviceTimeoutSeconds: 300,
          maxFailurePercent: 20,
          ...strategy,
        }),
        currentBatch: 0,
        reason: null,
        createdAt: new Date(T0).toISOString(),
        finishedAt: null,
      },
      batches: batchSizes.map((_, i) => ({
        number: i + 1,
        state: 'pending',
        startedAt: null,
        bakeUntil: null,
        finishedAt: null,
      })),
      devices: batchSizes.flatMap((size, i) =>
        Array.from({ length: size }, () => ({
          uuid: `d${++n}`,
          batch: i + 1,
          state: 'pending' as const,
          fromReleaseId: from,
          notifiedAt: null,
          deadline: null,
          bytesSent: 0,
          reason: null,
          report: {
            exists: true,
            status: 'running',
            releaseId: from,
            bytesDone: null,
            bytesTotal: null,
            error: null,
            at: null,
          },
        })),
      ),
    };
  }

  /** Runs one step and writes its decision back, as the service does. */
  step(): Decision {
    return this.apply(decide(this.snapshot, this.now));
  }

  act(action: 'pause' | 'resume' | 'abort'): Decision {
    return this.apply(operatorAction(this.snapshot, action, this.now));
  }

  apply(decision: Decision): Decision {
    if (decision.rollout) this.snapshot.rollout = { ...decision.rollout };
    for (const n of decision.addedBatches ?? [])
      this.snapshot.batches.push({
        number: n,
        state: 'pending',
        startedAt: null,
        bakeUntil: null,
        finishedAt: null,
      });
    for (const j of decision.joined ?? [])
      this.snapshot.devices.push({
        uuid: j.uuid,
        batch: j.batch,
        state: 'pending',
        fromReleaseId: j.fromReleaseId,
        notifiedAt: null,
        deadline: null,
        bytesSent: 0,
        reason: null,
        report: {
          exists: true,
          status: 'running',
          releaseId: j.fromReleaseId,
          bytesDone: null,
          bytesTotal: null,
          error: null,
          at: null,
        },
      });
    this.snapshot.joiners = [];
    for (const b of decision.batches)
      Object.assign(
        this.snapshot.batches.find((x) => x.number === b.number)!,
        b,
      );
    for (const change of decision.devices) {
      const { notify, ...rest } = change;
      Object.assign(
        this.snapshot.devices.find((d) => d.uuid === change.uuid)!,
        rest,
      );
      if (notify) this.notices.push({ uuid: change.uuid, releaseId: notify });
    }
    return decision;
  }

  advance(seconds: number): void {
    this.now += seconds * 1000;
  }

  report(uuid: string, report: Partial<EngineReport>): void {
    const device = this.snapshot.devices.find((d) => d.uuid === uuid)!;
    device.report = { ...device.report, ...report, at: new Date(this.now).toISOString() };
  }

  batchOf(n: number): string[] {
    return this.snapshot.devices.filter((d) => d.batch === n).map((d) => d.uuid);
  }

  stateOf(uuid: string): string {
    return this.snapshot.devices.find((d) => d.uuid === uuid)!.state;
  }

  batchState(n: number): string {
    return this.snapshot.batches.find((b) => b.number === n)!.state;
  }

  /** Every device of batch `n` comes up on the new release. */
  upgrade(n: number, bytes = 100): void {
    this.advance(1);
    for (const uuid of this.batchOf(n))
      this.report(uuid, { status: 'running', releaseId: NEW, bytesDone: bytes, bytesTotal: bytes });
  }
}

describe('transition table', () => {
  it('has terminal states with no way out and every target a known state', () => {
    expect(ROLLOUT_TRANSITIONS.completed).toEqual([]);
    expect(ROLLOUT_TRANSITIONS.aborted).toEqual([]);
    for (const table of [ROLLOUT_TRANSITIONS, BATCH_TRANSITIONS, DEVICE_TRANSITIONS] as Record<
      string,
      readonly string[]
    >[])
      for (const targets of Object.values(table))
        for (const t of targets) expect(Object.keys(table)).toContain(t);
  });

  it('refuses what is not listed', () => {
    expect(canTransition('rollout', 'completed', 'running')).toBe(false);
    expect(canTransition('rollout', 'paused', 'running')).toBe(true);
    expect(canTransition('device', 'succeeded', 'failed')).toBe(false);
    expect(canTransition('batch', 'passed', 'running')).toBe(false);
  });
});

describe('batch planning', () => {
  it('resolves cumulative counts and percentages, rounding up and ending with everyone', () => {
    expect(resolveBatches([1, '10%', '50%', '100%'], 50)).toEqual([1, 4, 20, 25]);
    expect(resolveBatches([1, '10%', '50%', '100%'], 3)).toEqual([1, 1, 1]);
    expect(resolveBatches([1, '10%'], 20)).toEqual([1, 1, 18]);
    expect(resolveBatches([5, 5, '100%'], 8)).toEqual([5, 3]);
    expect(resolveBatches([1, '100%'], 0)).toEqual([]);
  });

  it('refuses batch ends that shrink', () => {
    expect(() => checkBatchSpec([5, 2])).toThrow(/cumulative/);
    expect(() => checkBatchSpec(['50%', '10%'])).toThrow(/cumulative/);
    expect(() => checkBatchSpec([1, '10%', 2, '50%'])).not.toThrow();
  });

  it('leaves pinned, up-to-date and filtered-out devices alone and puts online devices first', () => {
    const device = (uuid: string, extra: object) => ({
      uuid,
      name: uuid,
      online: false,
      releaseId: OLD,
      tags: {},
      createdAt: uuid,
      ...extra,
    });
    const selection = selectDevices(
      [
        device('a', {}),
        device('b', { online: true }),
        device('c', { tags: { pinned: 'true' } }),
        device('d', { releaseId: NEW }),
        device('e', { tags: { pinned: 'false' } }),
      ],
      NEW,
      null,
      7,
    );
    expect(selection.eligible[0]!.uuid).toBe('b');
    expect(selection.eligible.map((d) => d.uuid).sort()).toEqual(['a', 'b', 'e']);
    expect(selection.pinned).toEqual(['c']);
    expect(selection.upToDate).toEqual(['d']);
    const filtered = selectDevices(
      [device('a', { tags: { ring: 'canary' } }), device('b', {})],
      NEW,
      { name: 'ring', value: 'canary' },
      7,
    );
    expect(filtered.eligible.map((d) => d.uuid)).toEqual(['a']);
    expect(filtered.filteredOut).toBe(1);
  });
});

describe('batch membership drawn from the rollout seed', () => {
  const fleet = Array.from({ length: 100 }, (_, i) => ({
    uuid: `device-${String(i).padStart(3, '0')}`,
    name: `pump-${String(i).padStart(3, '0')}`,
    online: true,
    releaseId: OLD,
    tags: {},
    createdAt: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}Z`,
  }));
  const firstBatch = (seed: number, devices = fleet): string[] =>
    selectDevices(devices, NEW, null, seed)
      .eligible.slice(0, 5)
      .map((d) => d.uuid);

  it('gives the same order for the same seed, whatever order the devices come in', () => {
    expect(firstBatch(42)).toEqual(firstBatch(42, [...fleet].reverse()));
    expect(selectDevices(fleet, NEW, null, 42).eligible).toHaveLength(100);
  });

  it('does not put the same devices first for every rollout (not name or age order)', () => {
    const firsts = new Set<string>();
    for (let seed = 0; seed < 200; seed += 1) firsts.add(firstBatch(seed)[0]!);
    // 200 draws from 100 devices: a fair draw hits about 87 distinct devices; name order would hit 1.
    expect(firsts.size).toBeGreaterThan(60);
    expect(firstBatch(1)).not.toEqual(firstBatch(2));
    expect(firstBatch(1)).not.toEqual(fleet.slice(0, 5).map((d) => d.uuid));
  });

  it('still puts online devices before offline ones', () => {
    const mixed = fleet.map((d, i) => ({ ...d, online: i % 2 === 0 }));
    const order = selectDevices(mixed, NEW, null, 9).eligible;
    expect(order.slice(0, 50).every((d) => d.online)).toBe(true);
  });
});

describe('rollout engine', () => {
  it('runs batches in order, bakes each, and completes', () => {
    const r = new FakeRollout([1, 2, 3]);
    r.step();
    expect(r.batchState(1)).toBe('running');
    expect(r.notices).toEqual([{ uuid: 'd1', releaseId: NEW }]);
    expect(r.stateOf('d1')).toBe('notified');
    r.advance(1);
    r.report('d1', { status: 'downloading', releaseId: NEW, bytesDone: 40, bytesTotal: 100 });
    r.step();
    expect(r.stateOf('d1')).toBe('updating');
    expect(r.snapshot.devices[0]!.bytesSent).toBe(40);
    r.upgrade(1);
    r.step();
    expect(r.stateOf('d1')).toBe('verifying');
    expect(r.batchState(1)).toBe('baking');
    r.advance(30);
    r.step();
    expect(r.batchState(1)).toBe('baking');
    expect(r.batchState(2)).toBe('pending');
    r.advance(31);
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.stateOf('d1')).toBe('succeeded');
    expect(r.batchState(2)).toBe('running');
    r.upgrade(2);
    r.step();
    r.advance(61);
    r.step();
    r.upgrade(3);
    r.step();
    r.advance(61);
    r.step();
    expect(r.snapshot.rollout.state).toBe('completed');
    expect(r.snapshot.devices.every((d) => d.state === 'succeeded')).toBe(true);
    expect(r.notices).toHaveLength(6);
    expect(r.step()).toEqual({ rollout: null, batches: [], devices: [] });
  });

  it('ignores reports older than the notice and counts a device that does not come up in time as timed out', () => {
    const r = new FakeRollout([2, 2], { maxFailurePercent: 50, rollback: 'none' });
    r.step();
    r.report('d1', { status: 'running', releaseId: OLD });
    r.snapshot.devices[0]!.report.at = new Date(T0 - 1000).toISOString();
    r.step();
    expect(r.stateOf('d1')).toBe('notified');
    r.advance(1);
    r.report('d2', { status: 'running', releaseId: NEW });
    r.step();
    r.advance(298);
    r.step();
    expect(r.stateOf('d1')).toBe('notified');
    r.advance(1);
    r.step();
    expect(r.stateOf('d1')).toBe('timed_out');
    expect(r.snapshot.devices[0]!.reason).toMatch(/no running report within 300 s/);
    // 1 of 2 = 50 %: not more than the threshold, so the batch bakes.
    expect(r.batchState(1)).toBe('baking');
  });

  it('pauses when a batch fails past the threshold, rolls failed devices back, and resumes with the next batch', () => {
    const r = new FakeRollout([1, 4, 5], { maxFailurePercent: 25, onFailure: 'pause', rollback: 'failed' });
    r.step();
    r.upgrade(1);
    r.step();
    r.advance(61);
    r.step();
    expect(r.batchState(2)).toBe('running');
    const [a, b, c] = r.batchOf(2);
    r.advance(1);
    r.report(a!, { status: 'failed', releaseId: NEW, error: 'container exited with code 1' });
    r.step();
    // 1 of 4 = 25 %: at the threshold, not past it.
    expect(r.snapshot.rollout.state).toBe('running');
    expect(r.stateOf(a!)).toBe('rolling_back');
    expect(r.notices.at(-1)).toEqual({ uuid: a, releaseId: OLD });
    r.report(b!, { status: 'rolled_back', releaseId: OLD, error: 'health check failed' });
    r.step();
    expect(r.batchState(2)).toBe('failed');
    expect(r.snapshot.rollout.state).toBe('paused');
    expect(r.snapshot.rollout.reason).toMatch(/batch 2 failed: 50 %/);
    expect(r.batchState(3)).toBe('pending');
    // Devices keep being watched while paused: a rollback is confirmed.
    r.advance(1);
    r.report(a!, { status: 'running', releaseId: OLD });
    r.report(c!, { status: 'running', releaseId: NEW });
    r.step();
    expect(r.stateOf(a!)).toBe('rolled_back');
    expect(r.stateOf(c!)).toBe('verifying');
    expect(r.batchState(3)).toBe('pending');
    r.act('resume');
    r.step();
    expect(r.batchState(3)).toBe('running');
    r.upgrade(3);
    r.step();
    r.advance(61);
    r.step();
    expect(r.snapshot.rollout.state).toBe('completed');
    expect(r.snapshot.rollout.reason).toMatch(/resumed past a failed batch/);
  });

  it('aborts on failure when told to, cancels the rest, and rolls the whole batch back', () => {
    const r = new FakeRollout([2, 3], { maxFailurePercent: 0, onFailure: 'abort', rollback: 'batch' });
    r.step();
    r.advance(1);
    r.report('d1', { status: 'running', releaseId: NEW });
    r.report('d2', { status: 'failed', releaseId: NEW, error: 'no space left on device' });
    r.step();
    expect(r.snapshot.rollout.state).toBe('aborted');
    expect(r.batchState(1)).toBe('failed');
    expect(r.batchState(2)).toBe('canceled');
    expect(r.stateOf('d1')).toBe('rolling_back');
    expect(r.stateOf('d2')).toBe('rolling_back');
    expect(r.snapshot.devices.filter((d) => d.batch === 2).every((d) => d.state === 'canceled')).toBe(true);
    expect(
      r.notices
        .filter((n) => n.releaseId === OLD)
        .map((n) => n.uuid)
        .sort(),
    ).toEqual(['d1', 'd2']);
    expect(r.step()).toEqual({ rollout: null, batches: [], devices: [] });
  });

  it('judges a batch by runtime: a device failing during the bake fails the batch', () => {
    const r = new FakeRollout([2, 2], { maxFailurePercent: 40, rollback: 'none' });
    r.step();
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('baking');
    r.advance(30);
    r.report('d2', { status: 'failed', releaseId: NEW, error: 'crashed after 30 s' });
    r.step();
    expect(r.stateOf('d2')).toBe('failed');
    expect(r.snapshot.devices[1]!.reason).toMatch(/failed while baking: crashed/);
    expect(r.batchState(1)).toBe('failed');
    expect(r.snapshot.rollout.state).toBe('paused');
  });

  it('does not roll back a device that ran nothing before', () => {
    const r = new FakeRollout([1], { rollback: 'failed', maxFailurePercent: 100 }, null);
    r.step();
    r.advance(1);
    r.report('d1', { status: 'failed', releaseId: NEW, error: 'boom' });
    r.step();
    expect(r.stateOf('d1')).toBe('failed');
    expect(r.snapshot.devices[0]!.reason).toMatch(/no earlier release/);
  });

  it('lets an operator pause, resume and abort, and refuses what the table does not allow', () => {
    const r = new FakeRollout([1, 1]);
    r.step();
    r.act('pause');
    expect(r.snapshot.rollout.state).toBe('paused');
    r.upgrade(1);
    r.step();
    r.advance(61);
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.batchState(2)).toBe('pending');
    expect(() => r.act('pause')).toThrow(ConflictError);
    r.act('abort');
    expect(r.snapshot.rollout.state).toBe('aborted');
    expect(r.batchState(2)).toBe('canceled');
    expect(() => r.act('resume')).toThrow(/cannot go from aborted to running/);
  });

  it('resumes after a restart exactly where the stored snapshot was (same decision from the same data)', () => {
    const r = new FakeRollout([1, 2]);
    r.step();
    r.upgrade(1);
    r.step();
    // "Restart": a new engine sees only the stored snapshot (a deep copy) and the clock.
    const stored = JSON.parse(JSON.stringify(r.snapshot)) as RolloutSnapshot;
    r.advance(61);
    const first = decide(stored, r.now);
    const second = decide(JSON.parse(JSON.stringify(stored)) as RolloutSnapshot, r.now);
    expect(second).toEqual(first);
    expect(first.batches.map((b) => [b.number, b.state])).toEqual([
      [1, 'passed'],
      [2, 'running'],
    ]);
    expect(first.devices.filter((d) => d.notify === NEW).map((d) => d.uuid)).toEqual(['d2', 'd3']);
  });

  it('waits up to waitForDeltasSeconds for deltas still being built before telling a batch', () => {
    const r = new FakeRollout([1, 1], { waitForDeltasSeconds: 60, bakeSeconds: 0 });
    r.snapshot.deltasPending = true;
    expect(r.step().devices).toEqual([]);
    r.advance(59);
    r.step();
    expect(r.batchState(1)).toBe('pending');
    // The deltas are ready: the batch starts at once.
    r.snapshot.deltasPending = false;
    r.step();
    expect(r.batchState(1)).toBe('running');
    // More deltas are being built when batch 1 passes: batch 2 waits again, but not forever.
    r.snapshot.deltasPending = true;
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.batchState(2)).toBe('pending');
    r.advance(59);
    r.step();
    expect(r.batchState(2)).toBe('pending');
    r.advance(2);
    r.step();
    expect(r.batchState(2)).toBe('running');
  });

  it('tells at most maxDevicesPerMinute devices in any minute and bakes only once all were told', () => {
    const r = new FakeRollout([5], { maxDevicesPerMinute: 2, bakeSeconds: 0 });
    r.step();
    expect(r.notices).toHaveLength(2);
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('running');
    r.advance(30);
    r.step();
    expect(r.notices).toHaveLength(2);
    r.advance(30);
    r.step();
    expect(r.notices).toHaveLength(4);
    r.advance(60);
    r.step();
    expect(r.notices).toHaveLength(5);
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.snapshot.rollout.state).toBe('completed');
  });

  it('tells no new device of a throttled batch while the rollout is paused', () => {
    const r = new FakeRollout([3], { maxDevicesPerMinute: 1 });
    r.step();
    r.act('pause');
    r.advance(61);
    r.step();
    expect(r.notices).toHaveLength(1);
    r.act('resume');
    r.step();
    expect(r.notices).toHaveLength(2);
  });

  it('cancels a device that was deprovisioned mid-rollout and does not count it', () => {
    const r = new FakeRollout([2], { maxFailurePercent: 0 });
    r.step();
    r.snapshot.devices[0]!.report = { ...r.snapshot.devices[0]!.report, exists: false };
    r.advance(1);
    r.report('d2', { status: 'running', releaseId: NEW });
    r.step();
    expect(r.stateOf('d1')).toBe('canceled');
    expect(r.batchState(1)).toBe('baking');
  });
});

describe('late joiners and departures', () => {
  const joiner = (uuid: string) => ({
    uuid,
    name: uuid,
    fromReleaseId: OLD,
    projectedBytes: 10,
    fullBytes: 20,
  });

  it('puts a device that appears while batch 1 runs into batch 2, told when batch 2 starts', () => {
    const r = new FakeRollout([1, 2]);
    r.step();
    r.snapshot.joiners = [joiner('late')];
    const decision = r.step();
    expect(decision.joined).toEqual([{ ...joiner('late'), batch: 2 }]);
    expect(decision.addedBatches).toEqual([]);
    expect(r.stateOf('late')).toBe('pending');
    expect(r.notices.map((n) => n.uuid)).toEqual(['d1']);
    r.upgrade(1);
    r.step();
    r.advance(60);
    r.step();
    expect(r.batchState(2)).toBe('running');
    expect(r.notices.map((n) => n.uuid)).toEqual(['d1', 'd2', 'd3', 'late']);
    r.upgrade(2);
    r.step();
    r.advance(60);
    r.step();
    expect(r.stateOf('late')).toBe('succeeded');
    expect(r.snapshot.rollout.state).toBe('completed');
  });

  it('adds a late batch after the last one when every batch has started, and completes only after it', () => {
    const r = new FakeRollout([2]);
    r.step();
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('baking');
    r.snapshot.joiners = [joiner('late-b'), joiner('late-a')];
    const decision = r.step();
    expect(decision.addedBatches).toEqual([2]);
    expect(decision.joined!.map((j) => [j.uuid, j.batch])).toEqual([
      ['late-b', 2],
      ['late-a', 2],
    ]);
    r.advance(60);
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.batchState(2)).toBe('running');
    expect(r.snapshot.rollout.state).toBe('running');
    expect(r.notices.map((n) => n.uuid).sort()).toEqual(['d1', 'd2', 'late-a', 'late-b']);
    r.upgrade(2);
    r.step();
    r.advance(60);
    r.step();
    expect(r.snapshot.rollout.state).toBe('completed');
  });

  it('adds a device only once, keeps joiners of a paused rollout pending, and takes none once it ended', () => {
    const r = new FakeRollout([1, 1]);
    r.step();
    r.act('pause');
    r.snapshot.joiners = [joiner('late'), joiner('d1')];
    expect(r.step().joined!.map((j) => j.uuid)).toEqual(['late']);
    r.snapshot.joiners = [joiner('late')];
    expect(r.step().joined).toBeUndefined();
    expect(r.stateOf('late')).toBe('pending');
    r.act('abort');
    expect(r.stateOf('late')).toBe('canceled');
    r.snapshot.joiners = [joiner('later')];
    expect(r.step().joined).toBeUndefined();
  });

  it('cancels a device deprovisioned before its batch started, so it never times out or fails the batch', () => {
    const r = new FakeRollout([1, 2], { maxFailurePercent: 0 });
    r.step();
    r.snapshot.devices.find((d) => d.uuid === 'd3')!.report.exists = false;
    r.upgrade(1);
    r.step();
    expect(r.stateOf('d3')).toBe('canceled');
    expect(r.snapshot.devices.find((d) => d.uuid === 'd3')!.reason).toBe('device deprovisioned');
    r.advance(60);
    r.step();
    expect(r.notices.map((n) => n.uuid)).toEqual(['d1', 'd2']);
    r.advance(10);
    r.report('d2', { status: 'running', releaseId: NEW });
    r.step();
    r.advance(60);
    r.step();
    expect(r.batchState(2)).toBe('passed');
    expect(r.snapshot.rollout.state).toBe('completed');
  });
});

describe('rollout engine: health against a control group', () => {
  const group = (devices: number, affected: GroupHealth['affected'] = {}): GroupHealth => ({
    devices,
    affected,
    events: { ...affected },
  });
  /** Runs batch 1 up to its bake end and hands the engine this window. */
  const bakeBatchOne = (r: FakeRollout, updated: GroupHealth, control: GroupHealth): void => {
    r.step();
    r.upgrade(1);
    r.step();
    expect(r.batchState(1)).toBe('baking');
    r.advance(30);
    expect(healthWindowNeeded(r.snapshot, r.now)).toBeNull();
    r.advance(31);
    expect(healthWindowNeeded(r.snapshot, r.now)?.number).toBe(1);
    r.snapshot.health = { from: 'a', to: 'b', updated, control };
  };

  it('pauses when the updated group restarts far more often than the control group', () => {
    const r = new FakeRollout([5, 40], {
      healthComparison: { marginPercent: 10, alpha: 0.05, minAffected: 2, onWorse: 'pause', metrics: [] },
    });
    bakeBatchOne(r, group(5, { restarts: 5 }), group(40, { restarts: 2 }));
    const decision = r.step();
    expect(r.batchState(1)).toBe('failed');
    expect(r.snapshot.rollout.state).toBe('paused');
    expect(r.snapshot.rollout.reason).toContain('batch 1 worse than the control group: restarts: 5 of 5');
    expect(decision.batches[0]?.health).toMatchObject({ verdict: 'worse', interim: false });
    expect(r.batchState(2)).toBe('pending');
    expect(r.batchOf(1).every((uuid) => r.stateOf(uuid) === 'verifying')).toBe(true);
  });

  it('aborts instead when told to, cancelling the devices not told yet', () => {
    const r = new FakeRollout([5, 40], {
      healthComparison: { marginPercent: 10, alpha: 0.05, minAffected: 2, onWorse: 'abort', metrics: [] },
    });
    bakeBatchOne(r, group(5, { offline: 4 }), group(40, { offline: 1 }));
    r.step();
    expect(r.snapshot.rollout.state).toBe('aborted');
    expect(r.batchOf(2).every((uuid) => r.stateOf(uuid) === 'canceled')).toBe(true);
  });

  it('passes a batch no worse than its control group and keeps the verdict on the batch', () => {
    const r = new FakeRollout([5, 40], {
      healthComparison: { marginPercent: 10, alpha: 0.05, minAffected: 2, onWorse: 'pause', metrics: [] },
    });
    bakeBatchOne(r, group(5, { restarts: 1 }), group(40, { restarts: 6 }));
    const decision = r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(decision.batches.find((b) => b.number === 1)?.health?.verdict).toBe('ok');
    expect(r.batchState(2)).toBe('running');
  });

  it('does not pause a canary of one that restarted, against a quiet fleet', () => {
    const r = new FakeRollout([1, 200], {
      healthComparison: { marginPercent: 10, alpha: 0.05, minAffected: 2, onWorse: 'pause', metrics: [] },
    });
    bakeBatchOne(r, group(1, { restarts: 1, errors: 1 }), group(200));
    r.step();
    expect(r.batchState(1)).toBe('passed');
    expect(r.snapshot.rollout.state).toBe('running');
  });

  it('does not judge without a strategy that asks, nor before the bake ends', () => {
    const r = new FakeRollout([5, 40]);
    r.step();
    r.upgrade(1);
    r.step();
    r.advance(61);
    expect(healthWindowNeeded(r.snapshot, r.now)).toBeNull();
    r.snapshot.health = { from: 'a', to: 'b', updated: group(5, { restarts: 5 }), control: group(40) };
    r.step();
    expect(r.batchState(1)).toBe('passed');
  });
});

describe('scheduled start', () => {
  /** A rollout created scheduled, as the service stores one whose startAt is ahead. */
  function scheduled(startInSeconds: number): FakeRollout {
    const r = new FakeRollout([1, 2], { startAt: new Date(T0 + startInSeconds * 1000).toISOString() });
    r.snapshot.rollout.state = 'scheduled';
    return r;
  }

  it('tells no device before its start time, then runs like any rollout', () => {
    const r = scheduled(3600);
    expect(r.step()).toEqual({ rollout: null, batches: [], devices: [] });
    r.advance(3599);
    r.step();
    expect(r.snapshot.rollout.state).toBe('scheduled');
    expect(r.notices).toEqual([]);
    r.advance(1);
    r.step();
    expect(r.snapshot.rollout.state).toBe('running');
    expect(r.snapshot.rollout.reason).toBeNull();
    expect(r.batchState(1)).toBe('running');
    expect(r.notices.map((n) => n.uuid)).toEqual(['d1']);
  });

  it('takes late joiners while scheduled; an operator can start it early with resume or abort it, not pause it', () => {
    const early = scheduled(3600);
    early.snapshot.joiners = [
      { uuid: 'late', name: 'late', fromReleaseId: OLD, projectedBytes: 1, fullBytes: 1 },
    ];
    expect(early.step().joined?.map((j) => [j.uuid, j.batch])).toEqual([['late', 1]]);
    expect(() => early.act('pause')).toThrow(ConflictError);
    early.act('resume');
    early.step();
    expect(early.snapshot.rollout.state).toBe('running');
    expect(early.notices.map((n) => n.uuid).sort()).toEqual(['d1', 'late']);

    const dropped = scheduled(3600);
    dropped.act('abort');
    expect(dropped.snapshot.rollout.state).toBe('aborted');
    expect(dropped.snapshot.devices.every((d) => d.state === 'canceled')).toBe(true);
    dropped.advance(7200);
    dropped.step();
    expect(dropped.notices).toEqual([]);
  });
});

describe('devices waiting for their maintenance window', () => {
  const waitFor = (r: FakeRollout, uuid: string, opens: string): void =>
    r.report(uuid, {
      status: 'deferred',
      releaseId: NEW,
      bytesDone: 100,
      bytesTotal: 100,
      error: `${MAINTENANCE_WAIT} (opens ${opens})`,
    });

  it('does not time out a device that downloaded and waits for its window, and times it again once the window opened', () => {
    const r = new FakeRollout([2], { deviceTimeoutSeconds: 300, rollback: 'none', maxFailurePercent: 100 });
    r.step();
    r.advance(10);
    waitFor(r, 'd1', '2026-01-03T02:00:00.000Z');
    r.step();
    expect(r.stateOf('d1')).toBe('updating');
    const d1 = r.snapshot.devices.find((d) => d.uuid === 'd1')!;
    expect(d1.deadline).toBeNull();
    expect(d1.reason).toBe(`${MAINTENANCE_WAIT} (opens 2026-01-03T02:00:00.000Z)`);
    // A day later: d2 (silent) has timed out, d1 is still waiting and the batch is not judged yet.
    r.advance(24 * 3600);
    r.step();
    expect(r.stateOf('d2')).toBe('timed_out');
    expect(r.stateOf('d1')).toBe('updating');
    expect(r.batchState(1)).toBe('running');
    // The window opens: installing, with a fresh timeout from now.
    r.advance(3600);
    r.report('d1', { status: 'installing', releaseId: NEW, error: null });
    r.step();
    expect(d1.reason).toBeNull();
    expect(r.snapshot.devices.find((d) => d.uuid === 'd1')!.deadline).toBe(
      new Date(r.now + 300_000).toISOString(),
    );
    r.advance(301);
    r.step();
    expect(r.stateOf('d1')).toBe('timed_out');
  });

  it('completes once the waiting device comes up inside its window', () => {
    const r = new FakeRollout([1], { deviceTimeoutSeconds: 60 });
    r.step();
    r.advance(1);
    waitFor(r, 'd1', 'later');
    r.step();
    r.advance(7 * 24 * 3600);
    r.step();
    expect(r.stateOf('d1')).toBe('updating');
    r.upgrade(1);
    r.step();
    r.advance(60);
    r.step();
    expect(r.stateOf('d1')).toBe('succeeded');
    expect(r.snapshot.rollout.state).toBe('completed');
  });

  it('does not time out a device waiting for its download window either (a metered link)', () => {
    const r = new FakeRollout([1], { deviceTimeoutSeconds: 60, rollback: 'none' });
    r.step();
    r.advance(1);
    r.report('d1', {
      status: 'deferred',
      releaseId: NEW,
      bytesDone: 40,
      bytesTotal: 100,
      error: `${DOWNLOAD_WAIT} (opens 2026-01-03T12:00:00.000Z)`,
    });
    r.step();
    r.advance(3 * 24 * 3600);
    r.step();
    expect(r.stateOf('d1')).toBe('updating');
    expect(r.snapshot.devices[0]!.deadline).toBeNull();
    // Downloading again inside its window: the timeout runs from now.
    r.report('d1', { status: 'downloading', releaseId: NEW, bytesDone: 60, bytesTotal: 100, error: null });
    r.step();
    r.advance(61);
    r.step();
    expect(r.stateOf('d1')).toBe('timed_out');
  });

  it('still times out a device deferred for another reason (an update lock)', () => {
    const r = new FakeRollout([1], { deviceTimeoutSeconds: 60, rollback: 'none' });
    r.step();
    r.advance(1);
    r.report('d1', { status: 'deferred', releaseId: NEW, error: 'update lock held (main)' });
    r.step();
    expect(r.snapshot.devices[0]!.reason).toBe('deferred: update lock held (main)');
    // The same report again changes nothing: no row is rewritten on every tick.
    r.advance(1);
    expect(r.step().devices).toEqual([]);
    r.advance(59);
    r.step();
    expect(r.stateOf('d1')).toBe('timed_out');
  });
});
