import { Redis } from 'ioredis';

/** At most this many leftover keys are named in the failure. */
const SHOWN = 10;

/**
 * Jest's global teardown: fails the run when Redis still holds a key of this run's test prefixes
 * (`ferry-<name>-<run>-…`, test/support/redis-keys.ts) — a harness that does not delete its REDIS_PREFIX
 * or queue keys in its final close. Keys of other runs and programs on the same Redis are not looked at.
 */
export default async function globalTeardown(): Promise<void> {
  const run = process.env.FERRY_TEST_RUN;
  if (!run) return;
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  const left: string[] = [];
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `ferry-*-${run}-*`, 'COUNT', 1000);
      cursor = next;
      left.push(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  if (left.length > 0) {
    const namespaces = [...new Set(left.map((key) => key.split(':')[0]))];
    throw new Error(
      `${left.length} Redis key(s) of this test run were left behind, under ${namespaces.join(', ')} ` +
        `(e.g. ${left.slice(0, SHOWN).join(', ')}): the harness that made them must delete them when it closes`,
    );
  }
}
