import { Injectable } from '@nestjs/common';
import { RateLimitedError } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FailureCountsRepository, WINDOW_MS } from './failure-counts.repository';

/** One limit: at most `perMinute` failures of `key` (within its `scope`) in any minute. */
export interface FailureLimit {
  scope: string;
  key: string;
  perMinute: number;
}

/**
 * The one failure limiter of the server, for HTTP registrations and device keys and for MQTT logins:
 * it counts failed attempts only (a success costs nothing), shared by every server process through
 * Redis, over a sliding minute (the current minute's count plus the previous one's, weighted by how
 * much of it is still inside the last 60 s). Each check and each failure is O(1) per limit.
 *
 * Not `@nestjs/throttler`: it counts every request at guard time, while these limits count failures
 * once their outcome is known, and MQTT logins are no HTTP requests.
 */
@Injectable()
export class FailureLimiter {
  constructor(
    private readonly counts: FailureCountsRepository,
    private readonly clock: Clock,
  ) {}

  /** Throws {@link RateLimitedError} when any of `limits` is reached; `what` names the attempt. */
  async check(limits: FailureLimit[], what: string): Promise<void> {
    const now = this.clock.nowMs();
    const elapsed = (now % WINDOW_MS) / WINDOW_MS;
    for (const limit of limits) {
      const { current, previous } = await this.counts.counts(`${limit.scope}:${limit.key}`, now);
      if (current + previous * (1 - elapsed) >= limit.perMinute) {
        // The weighted count falls as the window slides; the end of the current minute is a safe bound.
        const retryAfter = Math.max(1, Math.ceil((WINDOW_MS - (now % WINDOW_MS)) / 1000));
        throw new RateLimitedError(`too many failed ${what} attempts; retry in ${retryAfter} s`, retryAfter);
      }
    }
  }

  /** Counts one failure against every one of `limits`. */
  async fail(limits: FailureLimit[]): Promise<void> {
    const now = this.clock.nowMs();
    for (const limit of limits) await this.counts.add(`${limit.scope}:${limit.key}`, now);
  }
}
