import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** Deletes the key only while it still holds our token (another process may own it after expiry). */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/** Extends the key's expiry only while it still holds our token. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * A Redis lease that makes one server process at a time the leader for one kind of decision (stepping
 * rollouts, reconciling deltas). The holder renews it every third of its TTL while it works, so a
 * long step never outlives its lease; a holder that dies (kill -9, a partition) stops renewing, and
 * another process takes over once the TTL has run out. A holder that finds its lease gone (it stalled
 * past the TTL and someone else took it) is told through `held()` and stops after its current step.
 */
export class LeaderLease {
  private readonly token = randomUUID();
  private depth = 0;
  private lost = false;
  private renewal: NodeJS.Timeout | null = null;
  private acquiring: Promise<boolean> | null = null;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly ttlMs: number,
  ) {}

  /** Whether this process holds the lease now (as far as its last renewal knows). */
  get holding(): boolean {
    return this.depth > 0 && !this.lost;
  }

  /**
   * Runs `fn` as the leader, or returns `undefined` without running it when another process leads.
   * Nested calls in the same process (an API request's step during the ticker's pass) share the lease.
   */
  async run<T>(fn: (held: () => boolean) => Promise<T>): Promise<T | undefined> {
    if (this.depth === 0) {
      // Callers of this process arriving while it asks for the lease wait for that answer.
      this.acquiring ??= this.acquire().finally(() => (this.acquiring = null));
      if (!(await this.acquiring)) return undefined;
    } else if (this.lost) return undefined;
    this.depth += 1;
    try {
      return await fn(() => !this.lost);
    } finally {
      this.depth -= 1;
      if (this.depth === 0) {
        if (this.renewal) clearInterval(this.renewal);
        this.renewal = null;
        await this.redis.eval(RELEASE, 1, this.key, this.token).catch(() => undefined);
      }
    }
  }

  private async acquire(): Promise<boolean> {
    if (this.renewal) return true;
    if ((await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) !== 'OK') return false;
    this.lost = false;
    this.renewal = setInterval(
      () => {
        this.redis
          .eval(RENEW, 1, this.key, this.token, String(this.ttlMs))
          .then((renewed) => {
            if (renewed !== 1) this.lost = true;
          })
          .catch(() => undefined);
      },
      Math.max(100, Math.floor(this.ttlMs / 3)),
    );
    this.renewal.unref();
    return true;
  }
}
