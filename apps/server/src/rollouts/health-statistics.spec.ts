import { fisherGreater, holm, logFactorial, wilsonInterval } from './health-statistics';

describe('logFactorial', () => {
  it('is ln(n!) exactly for small n', () => {
    expect(logFactorial(0)).toBe(0);
    expect(logFactorial(1)).toBe(0);
    expect(Math.exp(logFactorial(10))).toBeCloseTo(3_628_800, 3);
  });

  it('joins the summed table and Stirling’s series without a step at 256', () => {
    expect(logFactorial(256) - logFactorial(255)).toBeCloseTo(Math.log(256), 10);
    expect(logFactorial(100_000) - logFactorial(99_999)).toBeCloseTo(Math.log(100_000), 9);
  });

  it('refuses negative and fractional arguments', () => {
    expect(() => logFactorial(-1)).toThrow(RangeError);
    expect(() => logFactorial(1.5)).toThrow(RangeError);
  });
});

describe('fisherGreater (one-sided Fisher exact test)', () => {
  it('gives the hand-computed hypergeometric tails', () => {
    // 5 of 5 updated affected, 2 of 40 controls: only the split with all 5 in A is as extreme.
    expect(fisherGreater(5, 5, 2, 40)).toBeCloseTo(21 / 1_221_759, 12);
    // Fisher's lady tasting tea, 3 of 4 right: (16 + 1) / 70.
    expect(fisherGreater(3, 4, 1, 4)).toBeCloseTo(17 / 70, 12);
    // One device of one affected, none of 20 controls: 1 / 21.
    expect(fisherGreater(1, 1, 0, 20)).toBeCloseTo(1 / 21, 12);
  });

  it('is 1 when the updated group has no affected device', () => {
    expect(fisherGreater(0, 10, 7, 30)).toBe(1);
    expect(fisherGreater(0, 1, 0, 1)).toBe(1);
  });

  it('is a proper tail: P(X ≥ a) + P(X ≤ a − 1) = 1', () => {
    const upper = fisherGreater(4, 12, 6, 30);
    // P(X ≤ 3) in A equals P(X ≥ 7) in B (B's share of the 10 affected devices).
    const lower = fisherGreater(10 - 3, 30, 3, 12);
    expect(upper + lower).toBeCloseTo(1, 12);
  });

  it('stays finite and sensible for large groups', () => {
    const even = fisherGreater(500, 1000, 500, 1000);
    expect(even).toBeGreaterThan(0.5);
    expect(even).toBeLessThan(0.52);
    expect(fisherGreater(300, 1000, 100, 100_000)).toBeLessThan(1e-100);
  });

  it('refuses impossible tables', () => {
    expect(() => fisherGreater(3, 2, 0, 5)).toThrow(RangeError);
    expect(() => fisherGreater(-1, 2, 0, 5)).toThrow(RangeError);
  });
});

describe('wilsonInterval', () => {
  it('matches published 95 % intervals', () => {
    const none = wilsonInterval(0, 10);
    expect(none.low).toBe(0);
    expect(none.high).toBeCloseTo(0.2775, 4);
    const half = wilsonInterval(5, 10);
    expect(half.low).toBeCloseTo(0.2366, 4);
    expect(half.high).toBeCloseTo(0.7634, 4);
    const all = wilsonInterval(1, 1);
    expect(all.low).toBeCloseTo(0.2065, 4);
    expect(all.high).toBe(1);
  });

  it('knows nothing of an empty group', () => {
    expect(wilsonInterval(0, 0)).toEqual({ low: 0, high: 1 });
  });
});

describe('holm', () => {
  it('steps down until the first p-value not under its level', () => {
    // Sorted: 0.005 < 0.05/4, 0.01 < 0.05/3, 0.03 ≥ 0.05/2 stops; 0.04 is never reached.
    expect(holm([0.01, 0.04, 0.03, 0.005], 0.05)).toEqual([
      { significant: true, threshold: 0.05 / 3 },
      { significant: false, threshold: null },
      { significant: false, threshold: 0.05 / 2 },
      { significant: true, threshold: 0.05 / 4 },
    ]);
  });

  it('is stricter than one test alone: 0.02 passes alone, not among four', () => {
    expect(holm([0.02], 0.05)[0]?.significant).toBe(true);
    expect(holm([0.02, 0.5, 0.6, 0.7], 0.05)[0]?.significant).toBe(false);
  });
});
