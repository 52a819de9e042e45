import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RateLimitedError } from '@ferry/protocol';
import { RedisOutageMonitor } from '@ferry/storage';
import { FakeClock } from '../clock/clock';
import { loadConfig } from '../config/config';
import { FailureCountsRepository, MEMORY_FALLBACK_KEYS } from './failure-counts.repository';
import { FailureLimiter } from './failure-limiter.service';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('FailureLimiter', () => {
  const prefix = `ferry-test-${randomBytes(4).toString('hex')}:`;
  const config = loadConfig({ REDIS_PREFIX: prefix, REDIS_URL }, '0123456789abcdef');
  const connections: Redis[] = [];
  /** A connection as the server's is when the limiter gets it: connected (unless it cannot be). */
  const redis = async (url = REDIS_URL): Promise<Redis> => {
    const r = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: url !== REDIS_URL });
    r.on('error', () => undefined);
    connections.push(r);
    if (url === REDIS_URL) await r.ping();
    return r;
  };
  const limit = (key: string, perMinute = 3) => [{ scope: 'test', key, perMinute }];
  const quiet = { warn: () => undefined, log: () => undefined };
  const monitors = [
    new RedisOutageMonitor(REDIS_URL, quiet),
    new RedisOutageMonitor('redis://127.0.0.1:1', quiet),
  ];
  const [monitor, deadMonitor] = monitors as [RedisOutageMonitor, RedisOutageMonitor];

  afterAll(async () => {
    const keys = await connections[0]!.keys(`${prefix}*`);
    if (keys.length > 0) await connections[0]!.del(...keys);
    await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
    for (const m of monitors) m.close();
  });

  it('refuses a key after N failures in a minute, shared by every limiter on the same Redis, and lets it back in', async () => {
    const clock = new FakeClock('2026-01-01T00:00:10.000Z');
    const one = new FailureLimiter(new FailureCountsRepository(await redis(), config, monitor), clock);
    const two = new FailureLimiter(new FailureCountsRepository(await redis(), config, monitor), clock);
    await one.fail(limit('10.0.0.1'));
    await two.fail(limit('10.0.0.1'));
    await one.check(limit('10.0.0.1'), 'test');
    await two.fail(limit('10.0.0.1'));
    await expect(one.check(limit('10.0.0.1'), 'test')).rejects.toThrow(RateLimitedError);
    await expect(two.check(limit('10.0.0.1'), 'test')).rejects.toThrow(/retry in 50 s/);
    await one.check(limit('10.0.0.2'), 'test');
    // Half of the failed minute still lies inside the sliding window: 3 × 0.5 < 3.
    clock.advance(80_000);
    await one.check(limit('10.0.0.1'), 'test');
  });

  it('keeps each counter in Redis for two minutes at most, whatever the number of sources', async () => {
    const clock = new FakeClock();
    const counts = new FailureCountsRepository(await redis(), config, monitor);
    const limiter = new FailureLimiter(counts, clock);
    for (let i = 0; i < 200; i += 1) await limiter.fail(limit(`flood-${i}`));
    const keys = await connections[0]!.keys(`${prefix}limits:*`);
    expect(keys.length).toBeGreaterThanOrEqual(200);
    for (const key of keys.slice(0, 20)) {
      const ttl = await connections[0]!.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(120_000);
    }
  });

  it('falls back to bounded in-process counts when Redis does not answer', async () => {
    const clock = new FakeClock();
    // Nothing listens on port 1: every command fails at once.
    const counts = new FailureCountsRepository(await redis('redis://127.0.0.1:1'), config, deadMonitor);
    const limiter = new FailureLimiter(counts, clock);
    for (let i = 0; i < 3; i += 1) await limiter.fail(limit('10.9.9.9'));
    await expect(limiter.check(limit('10.9.9.9'), 'test')).rejects.toThrow(RateLimitedError);
    // A flood of new sources never grows the table past its bound (before: 100,000+ entries, each
    // failure rescanning them all).
    for (let i = 0; i < MEMORY_FALLBACK_KEYS + 5_000; i += 1) await limiter.fail(limit(`src-${i}`));
    expect(counts.memoryKeys()).toBe(MEMORY_FALLBACK_KEYS);
  });
});
