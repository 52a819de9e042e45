import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { PacketEmitter, emitOnceSubscribed } from './emit-once-subscribed';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Emitter extends PacketEmitter {
  on(topic: string, listener: (packet: { payload: string }, cb: () => void) => void, done: () => void): void;
}

// A CommonJS package without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { MQEmitterRedisPrefix } = require('mqemitter-redis') as {
  MQEmitterRedisPrefix: new (prefix: string, opts: object) => Emitter;
};

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * On the real Redis: the receiving connection of mqemitter-redis is cut by the server (as a failover
 * cuts it) and comes back 700 ms later, while the publishing connection stays up.
 */
describe('emitOnceSubscribed', () => {
  let admin: Redis;
  let subConn: Redis;
  let pubConn: Redis;
  let mq: Emitter;
  const received: string[] = [];

  beforeEach(async () => {
    received.length = 0;
    admin = new Redis(REDIS_URL);
    subConn = new Redis(REDIS_URL, { retryStrategy: () => 700, maxRetriesPerRequest: null });
    pubConn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    await Promise.all([subConn, pubConn].map((r) => new Promise((resolve) => r.once('ready', resolve))));
    mq = new MQEmitterRedisPrefix(`ferry-test-${randomBytes(4).toString('hex')}:`, { subConn, pubConn });
  });

  afterEach(async () => {
    // mqemitter-redis's close waits for both connections to end: dropped ones never do.
    if (pubConn.status !== 'end') await new Promise<void>((resolve) => mq.close(resolve));
    admin.disconnect();
  });

  /** Subscribes, cuts the receiving connection, emits 5 messages while it is away, and a sixth once back. */
  async function cutAndEmit(): Promise<(Error | undefined)[]> {
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
    const subscriberId = await subscriberIdOf(subConn);
    await admin.call('CLIENT', 'KILL', 'ID', subscriberId);
    await until(() => subConn.status === 'reconnecting', 'the receiving connection to notice the cut');
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map(
        (n) =>
          new Promise<Error | undefined>((resolve) =>
            mq.emit({ topic: `ferry/v1/devices/d${n}/target`, payload: `notice ${n}` }, resolve),
          ),
      ),
    );
    await until(() => received.length >= 5, 'the held messages to arrive');
    await new Promise<Error | undefined>((resolve) =>
      mq.emit({ topic: 'ferry/v1/devices/d6/target', payload: 'notice 6' }, resolve),
    );
    await until(() => received.length >= 6, 'a message sent after the reconnect to arrive');
    return results;
  }

  it('holds messages emitted while the receiving connection is away and sends them, in order, once it has subscribed again', async () => {
    emitOnceSubscribed(mq, subConn);
    const results = await cutAndEmit();
    expect(results).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(received).toEqual(['notice 1', 'notice 2', 'notice 3', 'notice 4', 'notice 5', 'notice 6']);
  });

  it('fails what it holds when the broker closes meanwhile, and does not hang', async () => {
    emitOnceSubscribed(mq, subConn);
    await admin.call('CLIENT', 'KILL', 'ID', await subscriberIdOf(subConn));
    await until(() => subConn.status === 'reconnecting', 'the receiving connection to notice the cut');
    const result = new Promise<Error | undefined>((resolve) =>
      mq.emit({ topic: 'ferry/v1/devices/d1/target', payload: 'never' }, resolve),
    );
    // As the broker closes while Redis is away: the connections are dropped, then the emitter closed.
    subConn.disconnect();
    pubConn.disconnect();
    mq.close(() => undefined);
    expect((await result)?.message).toMatch(/closed before the message was sent/);
    expect(received).toEqual([]);
  });
});

/** The server-side id of a connection in subscriber mode (CLIENT ID is refused there): by its local port. */
async function subscriberIdOf(redis: Redis): Promise<string> {
  const port = (redis as unknown as { stream: { localPort: number } }).stream.localPort;
  const probe = new Redis(REDIS_URL);
  try {
    const list = String(await probe.call('CLIENT', 'LIST'));
    const line = list.split('\n').find((l) => l.includes(`addr=127.0.0.1:${port} `));
    const id = line ? /id=(\d+)/.exec(line)?.[1] : undefined;
    if (!id) throw new Error(`no client on local port ${port}`);
    return id;
  } finally {
    probe.disconnect();
  }
}
