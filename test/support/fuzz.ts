/**
 * How many cases each property-based test runs: thousands in CI (`npm test`); `FUZZ_RUNS=N` raises
 * every one to N for a longer run (`FUZZ_RUNS=50000 npx jest test/hostile libs/protocol`).
 */
export function fuzzRuns(ciDefault: number): number {
  const fromEnv = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : ciDefault;
}
