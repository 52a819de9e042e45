import { Redis } from 'ioredis';
import { deviceTopic } from '@ferry/protocol';
import {
  TestDevice,
  TestFleet,
  connectDevice,
  createFleet,
  delay,
  eventually,
  pushRelease,
  registerDevice,
  setTarget,
} from '../support/mqtt-devices';
import { connectPacket, publishPacket, rawConnection } from '../support/raw-mqtt';
import { deleteRedisKeys, testRedisPrefix } from '../support/redis-keys';
import { freshPostgresDatabase } from '../support/postgres';
import { ServerProcess, startServerProcess } from '../support/server-process';
import { TestServer, DATABASE_KINDS, startTestServer } from '../support/test-server';

const MIB = 1024 * 1024;

/**
 * One device's attack: `rounds` persistent-session connections, each sending `perRound` QoS 2
 * publishes with fresh message ids and never a PUBREL. Returns how many connections the broker cut
 * before the device had sent everything.
 */
async function floodQos2(
  port: number,
  device: TestDevice,
  rounds: number,
  perRound: number,
  payloadBytes: number,
): Promise<number> {
  const payload = Buffer.alloc(payloadBytes, 'x');
  const topic = deviceTopic(device.uuid, 'state');
  let cut = 0;
  for (let round = 0; round < rounds; round += 1) {
    const conn = await rawConnection(port);
    conn.socket.write(connectPacket(device.uuid, device.uuid, device.apiKey, { clean: false }));
    if (!(await conn.receivedAtLeast(4))) throw new Error('no CONNACK');
    expect([...conn.received().subarray(0, 4)]).toEqual([0x20, 2, conn.received()[2], 0]);
    const packets: Buffer[] = [];
    for (let i = 0; i < perRound; i += 1)
      packets.push(publishPacket(topic, payload, 2, ((round * perRound + i) % 65535) + 1));
    conn.socket.write(Buffer.concat(packets));
    // Every PUBREC is 4 bytes; a broker that takes them all answers each.
    const answeredAll = await conn.receivedAtLeast(4 + 4 * perRound, 15_000);
    if (!answeredAll) cut += 1;
    conn.socket.destroy();
    await conn.closed;
  }
  return cut;
}

describe.each(DATABASE_KINDS)('a QoS 2 flood never released (no PUBREL), across reconnects (%s)', (kind) => {
  let postgres: { url: string; drop: () => Promise<void> } | null = null;
  let server: ServerProcess;
  let device: TestDevice;

  beforeAll(async () => {
    postgres = kind === 'postgres' ? await freshPostgresDatabase() : null;
    server = await startServerProcess({
      MQTT_AUTH_FAILURES_PER_MINUTE: '1000',
      ...(postgres ? { DATABASE_URL: postgres.url } : {}),
    });
    device = await registerDevice(server, await createFleet(server, 'Qos2'));
  });
  afterAll(async () => {
    await server?.stop();
    await postgres?.drop();
  });

  it('is cut off at its first QoS 2 publish, and the server memory stays bounded', async () => {
    const port = server.mqttPort as number;
    // Warm up the paths the flood takes (a connection, a publish, a state write) before the baseline.
    const warm = await connectDevice(`mqtt://127.0.0.1:${port}`, device);
    await warm.publishAsync(deviceTopic(device.uuid, 'state'), JSON.stringify({ status: 'idle' }), {
      qos: 1,
    });
    await warm.endAsync();
    await delay(1000);
    const before = server.rss();
    // 20 sessions × 1,000 unreleased publishes × 15 KB (under MQTT_MAX_PAYLOAD_BYTES): 300 MB that a
    // broker keeping QoS 2 packets until PUBREL would hold forever.
    const cut = await floodQos2(port, device, 20, 1000, 15_000);
    await delay(1500);
    const after = server.rss();
    expect((after - before) / MIB).toBeLessThan(64);
    expect(cut).toBe(20);
    const stats = (await (await server.api('/v1/mqtt/stats')).json()) as { dropped: Record<string, number> };
    expect(stats.dropped.qos2).toBe(20);
    // The device itself still works at QoS 1.
    const client = await connectDevice(`mqtt://127.0.0.1:${port}`, device);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });
});

describe.each(DATABASE_KINDS)('the same flood on the Redis broker (MQTT_CLUSTER=redis) (%s)', (kind) => {
  const prefix = testRedisPrefix();
  let server: TestServer;
  let redis: Redis;
  let device: TestDevice;
  let fleet: TestFleet;

  beforeAll(async () => {
    server = await startTestServer(kind, {
      MQTT_CLUSTER: 'redis',
      REDIS_PREFIX: prefix,
      MQTT_AUTH_FAILURES_PER_MINUTE: '1000',
    });
    redis = new Redis(server.config.redisUrl);
    fleet = await createFleet(server, 'Qos2Cluster');
    device = await registerDevice(server, fleet);
  });
  afterAll(async () => {
    await server?.close();
    await redis.quit();
    await deleteRedisKeys(server.config.redisUrl, prefix);
  });

  it('stores none of them in Redis, and deprovisioning leaves no key of the offline device behind', async () => {
    const port = server.mqttPort as number;
    const session = await connectDevice(`mqtt://127.0.0.1:${port}`, device, {
      will: {
        topic: deviceTopic(device.uuid, 'presence'),
        payload: Buffer.from('{"status":"offline"}'),
        qos: 1,
        retain: true,
      },
    });
    await session.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    await session.endAsync();
    // A notice queued for the offline session.
    const release = await pushRelease(server, fleet, 'qos2-v1');
    expect(await setTarget(server, device.uuid, release.id)).toBe(200);
    expect(await redis.llen(`${prefix}mqtt:outgoing:${device.uuid}`)).toBe(1);
    const cut = await floodQos2(port, device, 3, 200, 1000);
    expect((await redis.keys(`${prefix}mqtt:incoming:*`)).length).toBe(0);
    expect(cut).toBe(3);
    // Deprovisioned while offline, with a stored session and a queued notice: nothing of it stays (the
    // queued notice was for this device alone).
    expect((await server.api(`/v1/devices/${device.uuid}`, { method: 'DELETE' })).status).toBe(204);
    const left = async (): Promise<string[]> => [
      ...(await redis.keys(`${prefix}*${device.uuid}*`)),
      ...(await redis.keys(`${prefix}mqtt:packet:*`)),
      ...(await redis.hkeys(`${prefix}mqtt:retained`)).filter((t) => t.includes(device.uuid)),
    ];
    await eventually(async () => ((await left()).length === 0 ? true : undefined), 5000).catch(
      () => undefined,
    );
    expect(await left()).toEqual([]);
  });
});
