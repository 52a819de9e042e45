import { createHash } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { RedisOutageMonitor } from '@ferry/storage';
import { REDIS, REDIS_MONITOR } from '../redis/redis.module';

/** Failures are counted per minute: the current and the previous minute's counts, by key. */
export const WINDOW_MS = 60_000;

/** How long a Redis command may take before the in-memory counts answer instead. */
const REDIS_TIMEOUT_MS = 500;

/** Most keys the in-memory fallback holds; past that the oldest is forgotten, in O(1). */
export const MEMORY_FALLBACK_KEYS = 10_000;

/** The counts of one key in the current and the previous window. */
export interface WindowCounts {
  current: number;
  previous: number;
}

/**
 * Failure counts shared by every server process, in Redis: one counter per key and minute that
 * expires after two minutes, so each failure costs one INCR and the whole table is bounded by what
 * two minutes of failures can write. When Redis does not answer in time the counts of this process
 * are used, in a map that never holds more than {@link MEMORY_FALLBACK_KEYS} keys.
 */
@Injectable()
export class FailureCountsRepository {
  private readonly logger = new Logger('FailureLimiter');
  private readonly memory = new Map<string, number>();
  private readonly prefix: string;
  private redisDown = false;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(FERRY_CONFIG) config: FerryConfig,
    @Inject(REDIS_MONITOR) private readonly monitor: RedisOutageMonitor,
  ) {
    this.prefix = `${config.redisPrefix}limits:`;
  }

  /** Counts of `key` (any string: it is hashed) in the window that holds `nowMs` and the one before. */
  async counts(key: string, nowMs: number): Promise<WindowCounts> {
    const window = Math.floor(nowMs / WINDOW_MS);
    const [current, previous] = [this.keyOf(key, window), this.keyOf(key, window - 1)];
    const values = await this.withRedis(() => this.redis.mget(current, previous));
    if (values) return { current: Number(values[0] ?? 0), previous: Number(values[1] ?? 0) };
    return { current: this.memory.get(current) ?? 0, previous: this.memory.get(previous) ?? 0 };
  }

  /** Adds one failure of `key` to the window that holds `nowMs`. */
  async add(key: string, nowMs: number): Promise<void> {
    const counter = this.keyOf(key, Math.floor(nowMs / WINDOW_MS));
    const done = await this.withRedis(() =>
      this.redis
        .multi()
        .incr(counter)
        .pexpire(counter, 2 * WINDOW_MS)
        .exec(),
    );
    if (done) return;
    const count = (this.memory.get(counter) ?? 0) + 1;
    this.memory.delete(counter);
    this.memory.set(counter, count);
    if (this.memory.size > MEMORY_FALLBACK_KEYS) {
      const oldest = this.memory.keys().next().value;
      if (oldest !== undefined) this.memory.delete(oldest);
    }
  }

  /** Keys held by the in-memory fallback (for tests). */
  memoryKeys(): number {
    return this.memory.size;
  }

  private keyOf(key: string, window: number): string {
    // Hashed: a presented identity may be any string, and the table must not grow with its length.
    const digest = createHash('sha256').update(key).digest('base64url').slice(0, 22);
    return `${this.prefix}${digest}:${window}`;
  }

  /** The result of `command`, or null (logged once per outage) when Redis fails or is too slow. */
  private async withRedis<T>(command: () => Promise<T>): Promise<T | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      // Not connected (an outage, a reconnect): no command waits in ioredis's offline queue.
      if (this.redis.status !== 'ready') throw new Error(`connection ${this.redis.status}`);
      const result = await Promise.race([
        command(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer in time')), REDIS_TIMEOUT_MS);
        }),
      ]);
      if (this.redisDown) this.logger.debug('Redis answers again: failure limits are shared again');
      this.redisDown = false;
      return result;
    } catch (error) {
      // The outage is the monitor's to log, once (its line says limits count per process meanwhile).
      this.monitor.report(error as Error);
      if (!this.redisDown)
        this.logger.debug(
          `Redis unavailable (${(error as Error).message}): failure limits count in this process only`,
        );
      this.redisDown = true;
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}
