/**
 * The statistics behind the control-group comparison (docs/rollouts.md): Fisher's exact test on two
 * proportions, Wilson score intervals, and Holm's correction over several tests. Pure and exact enough
 * for groups of any size (log-factorials, no normal approximation inside the test).
 */

const LOG_FACTORIALS: number[] = [0];

/** ln(n!): summed below 256, Stirling's series above (its next term is under 1e-19 there). */
export function logFactorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`logFactorial of ${n}`);
  if (n < 256) {
    for (let i = LOG_FACTORIALS.length; i <= n; i += 1)
      LOG_FACTORIALS.push((LOG_FACTORIALS[i - 1] ?? 0) + Math.log(i));
    return LOG_FACTORIALS[n] ?? 0;
  }
  const x = n + 1;
  return (
    (x - 0.5) * Math.log(x) -
    x +
    0.5 * Math.log(2 * Math.PI) +
    1 / (12 * x) -
    1 / (360 * x ** 3) +
    1 / (1260 * x ** 5)
  );
}

function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

/**
 * One-sided Fisher exact test: with `a` of `n` devices affected in group A and `b` of `m` in group B,
 * the chance that A gets `a` or more of the `a + b` affected devices when A and B are alike (the
 * hypergeometric upper tail). Small means A is worse than chance would make it.
 */
export function fisherGreater(a: number, n: number, b: number, m: number): number {
  for (const [v, name] of [
    [a, 'a'],
    [n, 'n'],
    [b, 'b'],
    [m, 'm'],
  ] as const)
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`fisherGreater: ${name} = ${v}`);
  if (a > n || b > m) throw new RangeError('fisherGreater: more affected than devices');
  const total = n + m;
  const affected = a + b;
  const top = Math.min(n, affected);
  const logDenominator = logChoose(total, n);
  let p = 0;
  for (let x = a; x <= top; x += 1) {
    if (affected - x > m) continue;
    p += Math.exp(logChoose(affected, x) + logChoose(total - affected, n - x) - logDenominator);
  }
  return Math.min(1, p);
}

/** Wilson score interval of `k` of `n` (z = 1.96: 95 %), as fractions; [0, 1] when n is 0. */
export function wilsonInterval(k: number, n: number, z = 1.959964): { low: number; high: number } {
  if (n === 0) return { low: 0, high: 1 };
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Holm's step-down correction: which of these p-values are significant with a family-wise error of
 * `alpha`, and the level each had to be under (null for those never reached). Sorted ascending, the
 * i-th (0-based) of k is compared with alpha / (k - i) until the first that is not under its level.
 */
export function holm(
  pValues: readonly number[],
  alpha: number,
): { significant: boolean; threshold: number | null }[] {
  const order = pValues.map((p, i) => ({ p, i })).sort((x, y) => x.p - y.p || x.i - y.i);
  const out = pValues.map(() => ({ significant: false, threshold: null as number | null }));
  const k = pValues.length;
  for (let rank = 0; rank < k; rank += 1) {
    const { p, i } = order[rank] ?? { p: 1, i: 0 };
    const entry = out[i] ?? { significant: false, threshold: null };
    const level = alpha / (k - rank);
    entry.threshold = level;
    if (p >= level) break;
    entry.significant = true;
  }
  return out;
}
