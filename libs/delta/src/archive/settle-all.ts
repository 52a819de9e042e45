/**
 * Waits for every promise, then throws the first failure. Unlike Promise.all it never returns while
 * one of them still runs: a tar consumer may still be writing a member file when the parser fails,
 * and the caller removes the staging folder as soon as this settles.
 */
export async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
