/**
 * How many cases each property-based test runs: thousands in CI (`npm test`), many more in the
 * longer run (`npm run fuzz`, which sets FUZZ_RUNS).
 */
export function fuzzRuns(ciDefault: number): number {
  const fromEnv = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : ciDefault;
}
