import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AddressInfo, Server, createServer } from 'node:net';
import { join } from 'node:path';
import { Aedes, AedesOptions } from 'aedes';
import memoryPersistence from 'aedes-persistence';
import { Redis, RedisOptions } from 'ioredis';
import { MqttClient, connectAsync } from 'mqtt';
import { storeWillOfDeadPeer } from '../../../../test/support/dead-mqtt-peer';
import { eventually } from '../../../../test/support/mqtt-devices';
import { publishPacket, rawConnection } from '../../../../test/support/raw-mqtt';
import {
  connectedClient,
  forgetClient,
  limitPacketSize,
  onClientConnectedElsewhere,
  storeSubscriptionsOnce,
  willOwner,
} from './aedes-patches';
import { clusterEmitter } from './cluster-emitter';

// A CommonJS package without types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const redisPersistence = require('aedes-persistence-redis') as (opts: object) => unknown;

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * One test per function of aedes-patches.ts, each against a real Aedes (and, where the patch is about
 * a cluster, real Redis): when an Aedes upgrade changes a private field or behaviour a patch relies
 * on, its test fails here rather than in production.
 */
describe('Aedes patches', () => {
  const redis: Redis[] = [];
  const closers: (() => Promise<void>)[] = [];
  const prefix = `ferry-test-${randomBytes(4).toString('hex')}:`;

  const connection = (keyPrefix?: string, extra: RedisOptions = {}): Redis => {
    const r = new Redis(REDIS_URL, {
      maxRetriesPerRequest: null,
      ...(keyPrefix ? { keyPrefix } : {}),
      ...extra,
    });
    redis.push(r);
    return r;
  };
  /** The server's routing between cluster processes, on this test's connections. */
  const emitter = (): AedesOptions['mq'] =>
    clusterEmitter(`${prefix}mqtt:`, (extra) => connection(undefined, extra));
  const clusterOptions = (): Partial<AedesOptions> => {
    const conn = connection(`${prefix}mqtt:`);
    return {
      persistence: redisPersistence({ conn }),
      mq: emitter(),
    };
  };
  /** A listening broker; `onClient` sees each client Aedes makes for a connection. */
  const startBroker = async (
    options: Partial<AedesOptions> = {},
    onClient: (client: ReturnType<Aedes['handle']>) => void = () => undefined,
  ): Promise<{ broker: Aedes; url: string; port: number }> => {
    const broker = new Aedes({ persistence: memoryPersistence() as never, ...options });
    await broker.listen();
    const server: Server = createServer((socket) => onClient(broker.handle(socket)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const { port } = server.address() as AddressInfo;
    return { broker, url: `mqtt://127.0.0.1:${port}`, port };
  };
  const client = async (url: string, clientId: string, clean = true): Promise<MqttClient> => {
    const c = await connectAsync(url, { clientId, clean, protocolVersion: 4, reconnectPeriod: 0 });
    closers.push(() => c.endAsync(true));
    return c;
  };

  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  });
  afterAll(async () => {
    const admin = connection();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await Promise.all(redis.map((r) => r.quit().catch(() => r.disconnect())));
  });

  it('pins Aedes and its persistences to exact versions', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '../../../../package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const name of ['aedes', 'aedes-persistence', 'aedes-persistence-redis', 'mqemitter-redis'])
      expect(manifest.dependencies[name]).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('limitPacketSize: cuts a connection once a packet announces more than the limit', async () => {
    let tooLarge = 0;
    const { port } = await startBroker({}, (c) => limitPacketSize(c, 1024, () => (tooLarge += 1)));
    const small = await rawConnection(port);
    small.socket.write(
      Buffer.concat([
        Buffer.from('101000044d5154540402001e00046c696d69', 'hex'), // CONNECT, client id "limi"
        publishPacket('t', Buffer.alloc(500), 0),
      ]),
    );
    expect(await small.receivedAtLeast(4)).toBe(true);
    expect(small.socket.destroyed).toBe(false);
    small.socket.destroy();
    const big = await rawConnection(port);
    // Only the header of a 1 MiB PUBLISH: the broker must not wait for (or buffer) its body.
    big.socket.write(Buffer.from('101000044d5154540402001e00046269696730808040', 'hex'));
    await big.closed;
    expect(tooLarge).toBe(1);
  });

  it('onClientConnectedElsewhere: tells which client moved to another broker of the cluster', async () => {
    const moved: string[] = [];
    const options = clusterOptions();
    const one = await startBroker(options);
    onClientConnectedElsewhere(one.broker, (id) => moved.push(id));
    const two = await startBroker(clusterOptions());
    await client(one.url, 'mover');
    await client(two.url, 'mover');
    await eventually(async () => (moved.includes('mover') ? true : undefined));
    expect(moved).toEqual(['mover']);
  });

  it('connectedClient: finds the live connection of a client id', async () => {
    const { broker, url } = await startBroker();
    const c = await client(url, 'here');
    expect(connectedClient(broker, 'here')?.id).toBe('here');
    expect(connectedClient(broker, 'elsewhere')).toBeUndefined();
    await c.endAsync();
    await eventually(async () => (connectedClient(broker, 'here') ? undefined : true));
  });

  it('willOwner: names the client whose will a dead peer left, published with no client', async () => {
    const seen: { client: unknown; owner: string | undefined; topic: string }[] = [];
    await startBroker({
      ...clusterOptions(),
      heartbeatInterval: 50,
      authorizePublish: (c, packet, done) => {
        seen.push({ client: c, owner: willOwner(packet), topic: packet.topic });
        done(null);
      },
    });
    await storeWillOfDeadPeer(REDIS_URL, prefix, 'gone-device', {
      topic: 'wills/gone',
      payload: Buffer.from('bye'),
      qos: 1,
      retain: false,
    });
    const will = await eventually(async () => seen.find((s) => s.topic === 'wills/gone'));
    expect(will).toEqual({ client: null, owner: 'gone-device', topic: 'wills/gone' });
  });

  it('storeSubscriptionsOnce: a persistent client of a cluster subscribing to two filters at once gets its SUBACK and both topics', async () => {
    const conn = connection(`${prefix}mqtt:`);
    const { url } = await startBroker({
      persistence: storeSubscriptionsOnce(redisPersistence({ conn }) as never),
      mq: emitter(),
    });
    const device = await client(url, 'two-filters', false);
    // Without the patch the SUBACK never comes (Aedes 1.2.0, aedes-persistence-redis 11.2.2).
    const granted = await Promise.race([
      device.subscribeAsync(['two/target', 'two/variables'], { qos: 1 }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no SUBACK within 10 s')), 10_000)),
    ]);
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    const received: string[] = [];
    device.on('message', (topic) => received.push(topic));
    const publisher = await client(url, 'two-filters-publisher');
    await publisher.publishAsync('two/target', 'a', { qos: 1 });
    await publisher.publishAsync('two/variables', 'b', { qos: 1 });
    await eventually(async () => (received.length === 2 ? true : undefined));
    expect(received.sort()).toEqual(['two/target', 'two/variables']);
  });

  it.each(['memory', 'redis'])(
    'forgetClient (%s persistence): drops subscriptions, queued messages, QoS 2 state and the will',
    async (kind) => {
      const conn = kind === 'redis' ? connection(`${prefix}mqtt:`) : undefined;
      const { broker, url } = await startBroker(
        conn
          ? {
              persistence: redisPersistence({ conn }),
              mq: emitter(),
            }
          : {},
      );
      const id = `forget-${kind}`;
      const sub = await client(url, id, false);
      await sub.subscribeAsync('queued/topic', { qos: 1 });
      await sub.endAsync();
      const publisher = await client(url, `${id}-publisher`);
      await publisher.publishAsync('queued/topic', 'waiting', { qos: 1 });
      const persistence = (
        broker as unknown as {
          persistence: {
            subscriptionsByClient(c: object): Promise<unknown[]>;
            outgoingStream(c: object): AsyncIterable<unknown>;
            putWill(c: object, p: object): Promise<void>;
            getWill(c: object): Promise<unknown>;
            incomingStorePacket(c: object, p: object): Promise<void>;
            incomingGetPacket(c: object, p: object): Promise<unknown>;
          };
        }
      ).persistence;
      const queued = async (): Promise<number> => {
        let n = 0;
        for await (const _ of persistence.outgoingStream({ id })) n += 1;
        return n;
      };
      const packet = {
        cmd: 'publish',
        topic: 'x',
        payload: Buffer.from('y'),
        qos: 2,
        retain: false,
        dup: false,
      };
      await persistence.putWill({ id }, { ...packet, qos: 1 });
      await persistence.incomingStorePacket({ id }, { ...packet, messageId: 7 });
      await eventually(async () => ((await queued()) === 1 ? true : undefined));
      expect(await persistence.subscriptionsByClient({ id })).toHaveLength(1);
      expect(await persistence.getWill({ id })).toBeTruthy();

      await forgetClient(broker, id, conn);

      expect(await persistence.subscriptionsByClient({ id })).toHaveLength(0);
      expect(await queued()).toBe(0);
      expect(await persistence.getWill({ id })).toBeFalsy();
      await expect(persistence.incomingGetPacket({ id }, { messageId: 7 })).rejects.toThrow();
      if (conn) expect(await connection().keys(`${prefix}mqtt:packet:*`)).toEqual([]);
    },
  );
});
