import { ConflictError, RolloutStrategy, RolloutStrategySchema } from '@ferry/protocol';
import { Decision, DeviceReport, RolloutSnapshot, decide, operatorAction } from './rollout-engine';
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

  report(uuid: string, report: Partial<DeviceReport>): void {
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
    );
    expect(selection.eligible.map((d) => d.uuid)).toEqual(['b', 'a', 'e']);
    expect(selection.pinned).toEqual(['c']);
    expect(selection.upToDate).toEqual(['d']);
    const filtered = selectDevices([device('a', { tags: { ring: 'canary' } }), device('b', {})], NEW, {
      name: 'ring',
      value: 'canary',
    });
    expect(filtered.eligible.map((d) => d.uuid)).toEqual(['a']);
    expect(filtered.filteredOut).toBe(1);
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
