import { MqttClient } from 'mqtt';
import { Release, deviceTopic } from '@ferry/protocol';
import { storeWillOfDeadPeer } from '../support/dead-mqtt-peer';
import {
  TestDevice,
  TestFleet,
  connectCode,
  connectDevice,
  createFleet,
  eventually,
  getDevice,
  nextMessage,
  pushRelease,
  registerDevice,
  setTarget,
} from '../support/mqtt-devices';
import { freshPostgresDatabase } from '../support/postgres';
import { deleteRedisKeys, testRedisPrefix } from '../support/redis-keys';
import { ServerProcess, startServerProcess } from '../support/server-process';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('last wills in a cluster of two server processes (MQTT_CLUSTER=redis)', () => {
  const prefix = testRedisPrefix();
  let database: { url: string; drop: () => Promise<void> };
  let a: ServerProcess;
  let b: ServerProcess;
  let fleet: TestFleet;
  let release: Release;
  let victim: TestDevice;
  let attacker: TestDevice;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    database = await freshPostgresDatabase();
    const env = {
      MQTT_CLUSTER: 'redis',
      REDIS_PREFIX: prefix,
      DATABASE_URL: database.url,
      // A peer silent for 3 s is dead; the survivor sweeps wills every 4 s.
      MQTT_HEARTBEAT_SECONDS: '1',
      MQTT_AUTH_FAILURES_PER_MINUTE: '1000',
    };
    a = await startServerProcess(env);
    b = await startServerProcess(env);
    fleet = await createFleet(a, 'Wills');
    release = await pushRelease(a, fleet, 'wills-v1');
    victim = await registerDevice(a, fleet);
    attacker = await registerDevice(a, fleet);
    expect(await setTarget(a, victim.uuid, release.id)).toBe(200);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await b?.stop();
    await a?.stop();
    await database?.drop();
    await deleteRedisKeys(REDIS_URL, prefix);
  });

  const forgedNotice = (): Buffer =>
    Buffer.from(
      JSON.stringify({
        releaseId: 'forged',
        version: 99,
        fleetId: fleet.id,
        issuedAt: new Date().toISOString(),
        blobsUrl: 'http://127.0.0.1:9/v1/blobs',
      }),
    );

  it('refuses a CONNECT whose will is not the device’s own presence (CONNACK 5)', async () => {
    const url = `mqtt://127.0.0.1:${a.mqttPort}`;
    const attempt = (will: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean }) =>
      connectCode(url, { clientId: attacker.uuid, username: attacker.uuid, password: attacker.apiKey, will });
    const offline = Buffer.from('{"status":"offline"}');
    expect(
      await attempt({
        topic: deviceTopic(victim.uuid, 'target'),
        payload: forgedNotice(),
        qos: 1,
        retain: true,
      }),
    ).toBe(5);
    expect(
      await attempt({ topic: deviceTopic(victim.uuid, 'presence'), payload: offline, qos: 1, retain: true }),
    ).toBe(5);
    expect(
      await attempt({
        topic: deviceTopic(attacker.uuid, 'presence'),
        payload: offline,
        qos: 2,
        retain: true,
      }),
    ).toBe(5);
    expect(
      await attempt({
        topic: deviceTopic(attacker.uuid, 'presence'),
        payload: Buffer.from('{"status":"hacked"}'),
        qos: 1,
        retain: true,
      }),
    ).toBe(5);
    // Its own presence is fine.
    expect(
      await attempt({
        topic: deviceTopic(attacker.uuid, 'presence'),
        payload: offline,
        qos: 1,
        retain: true,
      }),
    ).toBe(0);
  });

  it('publishes a dead peer’s wills with their owner’s rights only, never as the server', async () => {
    // A device on A with its own, legitimate will.
    const onA = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, attacker, {
      will: {
        topic: deviceTopic(attacker.uuid, 'presence'),
        payload: Buffer.from('{"status":"offline"}'),
        qos: 1,
        retain: true,
      },
    });
    clients.push(onA);
    await eventually(async () => ((await getDevice(b, attacker.uuid)).online ? true : undefined), 10_000);
    // A forged will already in the cluster's store (left by a peer that checked nothing, then died).
    await storeWillOfDeadPeer(REDIS_URL, prefix, attacker.uuid, {
      topic: deviceTopic(victim.uuid, 'target'),
      payload: forgedNotice(),
      qos: 1,
      retain: true,
    });
    await a.kill();
    // B publishes A's wills once A has been silent for three heartbeats: the device's own offline
    // presence is taken in...
    await eventually(
      async () => ((await getDevice(b, attacker.uuid)).online ? undefined : true),
      20_000,
      'the will of the device on the dead process marks it offline',
    );
    // ...and the forged will is dropped.
    const stats = await eventually(
      async () => {
        const s = (await (await b.api('/v1/mqtt/stats')).json()) as { dropped: Record<string, number> };
        return (s.dropped.forbidden_will ?? 0) >= 1 ? s : undefined;
      },
      20_000,
      'the forged will is dropped',
    );
    expect(stats.dropped.forbidden_will).toBe(1);
    // The victim still gets its real notice.
    const onB = await connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, victim, { clean: true });
    clients.push(onB);
    const notice = nextMessage(onB, deviceTopic(victim.uuid, 'target'));
    await onB.subscribeAsync(deviceTopic(victim.uuid, 'target'), { qos: 1 });
    expect(JSON.parse((await notice).toString())).toMatchObject({ releaseId: release.id });
  });
});
