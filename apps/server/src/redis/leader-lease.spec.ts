import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { LeaderLease } from './leader-lease';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The leader lease on the real Redis: one holder at a time, renewed while it works, taken over when it dies. */
describe('LeaderLease', () => {
  const key = `ferry-test-${randomBytes(4).toString('hex')}:lease`;
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await redis.del(key);
    await redis.quit();
  });

  it('lets one process lead at a time; nested calls of the leader share its lease', async () => {
    const a = new LeaderLease(redis, key, 2000);
    const b = new LeaderLease(redis, key, 2000);
    const order: string[] = [];
    await a.run(async () => {
      order.push('a');
      expect(await b.run(() => Promise.resolve(order.push('b')))).toBeUndefined();
      expect(await a.run(() => Promise.resolve(order.push('a nested')))).toBe(2);
    });
    expect(await b.run(() => Promise.resolve(order.push('b after')))).toBe(3);
    expect(order).toEqual(['a', 'a nested', 'b after']);
    expect(await redis.exists(key)).toBe(0);
  });

  it('renews the lease while its holder works past the TTL, so nobody else takes it meanwhile', async () => {
    const a = new LeaderLease(redis, key, 600);
    const b = new LeaderLease(redis, key, 600);
    let others = 0;
    await a.run(async (held) => {
      for (let i = 0; i < 8; i++) {
        await sleep(250);
        if ((await b.run(() => Promise.resolve(true))) === true) others += 1;
        expect(held()).toBe(true);
      }
    });
    expect(others).toBe(0);
  });

  it("is taken over once a dead holder's TTL ran out, and a holder that lost it is told", async () => {
    // What a process killed with -9 leaves: its token, never renewed.
    await redis.set(key, 'dead-process-token', 'PX', 800);
    const b = new LeaderLease(redis, key, 800);
    expect(await b.run(() => Promise.resolve('led'))).toBeUndefined();
    await sleep(900);
    let stillHeld: boolean | null = null;
    expect(
      await b.run(async (held) => {
        // Someone overwrites the lease (b stalled past its TTL): b learns at its next renewal.
        await redis.set(key, 'someone-else', 'PX', 5000);
        await sleep(600);
        stillHeld = held();
        return 'led';
      }),
    ).toBe('led');
    expect(stillHeld).toBe(false);
    // b releases only its own token: the other holder keeps the lease.
    expect(await redis.get(key)).toBe('someone-else');
  });
});
