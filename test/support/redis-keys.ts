import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * This jest run's tag, part of every Redis name a test makes (test/support/global-setup.ts sets it for
 * the whole run; a file run outside jest gets one of its own). The global teardown finds what tests
 * left behind by it, without looking at keys other runs or other programs on the same Redis own.
 */
export const TEST_RUN = process.env.FERRY_TEST_RUN ?? randomBytes(3).toString('hex');

/** The glob that matches every Redis key this run's tests may create. */
export const TEST_RUN_KEYS = `ferry-*-${TEST_RUN}-*`;

/** A REDIS_PREFIX of a test's own, so no two servers of concurrent tests share counters or leases. */
export function testRedisPrefix(): string {
  return `ferry-test-${TEST_RUN}-${randomBytes(4).toString('hex')}:`;
}

/** A FERRY_QUEUE_PREFIX of a test's own (BullMQ keys `<it>:deltas:…`); `name` at most 9 characters. */
export function testQueuePrefix(name = 'queue'): string {
  return `ferry-${name}-${TEST_RUN}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key under `prefix` (what a test server left behind). */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

/** Deletes the keys of a queue namespace (`FERRY_QUEUE_PREFIX`): everything BullMQ keeps under `<prefix>:`. */
export async function deleteQueueKeys(redisUrl: string, queuePrefix: string): Promise<void> {
  await deleteRedisKeys(redisUrl, `${queuePrefix}:`);
}

/** The Redis the tests are pointed at. */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
