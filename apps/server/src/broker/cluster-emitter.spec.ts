import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { clusterEmitter } from './cluster-emitter';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Subscribable {
  on(topic: string, listener: (packet: { payload: string }, cb: () => void) => void, done: () => void): void;
  close(done: () => void): void;
}

/** On the real Redis, as a server process of a cluster routes messages. */
describe('clusterEmitter', () => {
  it('keeps a channel subscribed while its connection was still being set up (ioredis would drop it and reconnect without)', async () => {
    const made: Redis[] = [];
    const mq = clusterEmitter(`ferry-test-${randomBytes(4).toString('hex')}:`, (extra) => {
      const redis = new Redis(REDIS_URL, extra);
      made.push(redis);
      return redis;
    }) as unknown as Subscribable & ReturnType<typeof clusterEmitter>;
    const [subConn] = made;
    const errors: string[] = [];
    for (const redis of made) redis.on('error', (error: Error) => errors.push(error.message));
    const received: string[] = [];
    try {
      // Connected, not ready yet: what Aedes does when a device subscribes during a reconnection.
      await new Promise<void>((resolve) => subConn!.once('connect', () => resolve()));
      const status = subConn!.status;
      await new Promise<void>((resolve) =>
        mq.on(
          'ferry/v1/devices/+/target',
          (packet, cb) => {
            received.push(String(packet.payload));
            cb();
          },
          resolve,
        ),
      );
      expect(status).toBe('connect');
      // Long enough for ioredis's own client setup and any reconnection it would make.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await new Promise<void>((resolve, reject) =>
        mq.emit({ topic: 'ferry/v1/devices/d1/target', payload: 'notice' }, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      const deadline = Date.now() + 5000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(received).toEqual(['notice']);
      expect(errors).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => mq.close(resolve));
    }
  });
});
