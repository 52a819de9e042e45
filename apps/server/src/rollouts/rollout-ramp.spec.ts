import { RolloutStrategySchema } from '@ferry/protocol';
import { MAX_BATCHES, checkStartAt, rampBatches, strategyBatches } from './rollout-planner';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

describe('exponential ramp', () => {
  it('grows each batch by the factor, rounds up, caps at max and ends with everyone', () => {
    expect(rampBatches({ base: 1, factor: 2 }, 20)).toEqual([1, 2, 4, 8, 5]);
    expect(rampBatches({ base: 1, factor: 2, max: 5 }, 20)).toEqual([1, 2, 4, 5, 5, 3]);
    // 2, 3, 4.5 → 5, 6.75 → 7, 10.125 → 11 (of the 12 left, 11 fit)
    expect(rampBatches({ base: 2, factor: 1.5 }, 28)).toEqual([2, 3, 5, 7, 11]);
    expect(rampBatches({ base: 10, factor: 3 }, 4)).toEqual([4]);
    expect(rampBatches({ base: 1, factor: 2 }, 0)).toEqual([]);
  });

  it('puts what is left in batch 100 when a slow ramp would need more batches', () => {
    const sizes = rampBatches({ base: 1, factor: 1 }, 1_000_000);
    expect(sizes).toHaveLength(MAX_BATCHES);
    expect(sizes.slice(0, 3)).toEqual([1, 1, 1]);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(1_000_000);
    expect(sizes.at(-1)).toBe(1_000_000 - 99);
  });

  it('replaces the list of batch ends when a strategy has one', () => {
    const list = RolloutStrategySchema.parse({ batches: [1, '100%'] });
    expect(strategyBatches(list, 10)).toEqual([1, 9]);
    const ramp = RolloutStrategySchema.parse({ ramp: { base: 1, factor: 3 } });
    expect(strategyBatches(ramp, 10)).toEqual([1, 3, 6]);
  });

  it('refuses hostile ramps', () => {
    for (const ramp of [
      { base: 0, factor: 2 },
      { base: 1.5, factor: 2 },
      { base: 1, factor: 0.5 },
      { base: 1, factor: 11 },
      { base: 1, factor: Number.NaN },
      { base: 1, factor: Number.POSITIVE_INFINITY },
      { base: 5, factor: 2, max: 4 },
      { base: 1, factor: 2, max: 2_000_000 },
      { base: '1', factor: 2 },
      { base: 1, factor: 2, extra: true },
      { base: 1 },
      [],
    ])
      expect(RolloutStrategySchema.safeParse({ ramp }).success).toBe(false);
  });
});

describe('scheduled start', () => {
  it('takes ISO 8601 times with a zone and refuses anything else', () => {
    expect(RolloutStrategySchema.parse({ startAt: '2026-06-01T02:00:00+02:00' }).startAt).toBe(
      '2026-06-01T02:00:00+02:00',
    );
    expect(RolloutStrategySchema.parse({ startAt: '2026-06-01T00:00:00Z' }).startAt).toBe(
      '2026-06-01T00:00:00Z',
    );
    for (const startAt of [
      'tomorrow',
      '2026-06-01',
      '2026-06-01T02:00:00',
      '2026-13-01T00:00:00Z',
      '+275760-09-13T00:00:00Z',
      '2026-06-01T02:00:00+02:00; drop table rollouts',
      1767225600000,
      '',
    ])
      expect(RolloutStrategySchema.safeParse({ startAt }).success).toBe(false);
  });

  it('refuses a start more than a year ahead and lets a past one start at once', () => {
    expect(() => checkStartAt('2027-01-02T00:00:00Z', T0)).toThrow(/more than a year ahead/);
    expect(() => checkStartAt('2026-12-31T00:00:00Z', T0)).not.toThrow();
    expect(() => checkStartAt('2020-01-01T00:00:00Z', T0)).not.toThrow();
    expect(() => checkStartAt(undefined, T0)).not.toThrow();
  });
});
