import { RateLimitedError } from '@ferry/protocol';

/**
 * Counts failures per key (a source address) in a sliding one-minute window and refuses further
 * attempts once `perMinute` failures are reached. Successful attempts do not count. In memory, per
 * process: a brute-forcer spread over several replicas gets `perMinute` tries per replica.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws {@link RateLimitedError} when `key` has failed too often recently. */
  check(key: string, what: string): void {
    const recent = this.recent(key);
    if (recent.length >= this.perMinute) {
      const retryAfter = Math.max(1, Math.ceil(((recent[0] ?? 0) + 60_000 - this.now()) / 1000));
      throw new RateLimitedError(
        `too many failed ${what} attempts from this address; retry in ${retryAfter} s`,
        retryAfter,
      );
    }
  }

  fail(key: string): void {
    const recent = this.recent(key);
    recent.push(this.now());
    this.failures.set(key, recent);
    if (this.failures.size > 100_000) this.prune();
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - 60_000;
    return (this.failures.get(key) ?? []).filter((t) => t > cutoff);
  }

  private prune(): void {
    for (const key of this.failures.keys()) {
      if (this.recent(key).length === 0) this.failures.delete(key);
    }
  }
}
