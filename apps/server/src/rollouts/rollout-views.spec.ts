import { RolloutDeviceView, RolloutStrategySchema } from '@ferry/protocol';
import { rolloutView } from './rollout-views';
import { RolloutRecord } from './rollouts.repository';

const rollout: RolloutRecord = {
  id: 'r1',
  fleetId: 'f1',
  releaseId: 'v2',
  state: 'paused',
  reason: 'batch 2 failed: 50 % of its devices',
  trigger: 'manual',
  strategy: RolloutStrategySchema.parse({}),
  tagFilter: null,
  currentBatch: 2,
  projectedBytes: 900,
  fullBytes: 4000,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:05:00.000Z',
  finishedAt: null,
};

const device = (
  uuid: string,
  batch: number,
  state: RolloutDeviceView['state'],
  extra = {},
): RolloutDeviceView => ({
  uuid,
  name: `n-${uuid}`,
  batch,
  state,
  fromReleaseId: 'v1',
  projectedBytes: 300,
  fullBytes: 1000,
  bytesSent: state === 'succeeded' ? 300 : 0,
  deadline: null,
  reason: null,
  updatedAt: '2026-01-01T00:04:00.000Z',
  ...extra,
});

describe('rolloutView', () => {
  it('counts states per batch and in all, lists failures, leaves deprovisioned devices out of the counts and sums bytes sent', () => {
    const view = rolloutView({
      rollout,
      releaseVersion: 2,
      batches: [
        { number: 1, size: 1, state: 'passed', startedAt: null, bakeUntil: null, finishedAt: null },
        { number: 2, size: 2, state: 'failed', startedAt: null, bakeUntil: null, finishedAt: null },
        { number: 3, size: 1, state: 'pending', startedAt: null, bakeUntil: null, finishedAt: null },
      ],
      devices: [
        device('a', 1, 'succeeded'),
        device('b', 2, 'failed', { reason: 'exited 1' }),
        device('c', 2, 'canceled', { reason: 'device deprovisioned' }),
        device('d', 3, 'canceled', { reason: 'rollout aborted' }),
      ],
      history: [{ at: rollout.createdAt, counts: { pending: 4 } }],
    });
    expect(view.releaseVersion).toBe(2);
    // The deprovisioned device left the rollout: not in the total, the counts or its batch's size.
    expect(view.total).toBe(3);
    expect(view.deprovisioned).toBe(1);
    expect(view.counts).toEqual({ succeeded: 1, failed: 1, canceled: 1 });
    expect(view.batches.map((b) => [b.number, b.size, b.counts, b.failurePercent])).toEqual([
      [1, 1, { succeeded: 1 }, 0],
      [2, 1, { failed: 1 }, 100],
      // A canceled device does not count: 0 failed of 0 judged.
      [3, 1, { canceled: 1 }, 0],
    ]);
    expect(view.failures.map((f) => [f.uuid, f.state, f.reason])).toEqual([['b', 'failed', 'exited 1']]);
    expect(view.bytes).toEqual({ projected: 900, sent: 300, full: 4000 });
    expect(view.history).toHaveLength(1);
    expect(view.updatedAt).toBe(rollout.updatedAt);
  });
});
