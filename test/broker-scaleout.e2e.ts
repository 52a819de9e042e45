import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { MqttClient, connectAsync } from 'mqtt';
import { Release, deviceTopic } from '@ferry/protocol';
import {
  TestFleet,
  connectCode,
  connectDevice,
  createFleet,
  eventually,
  getDevice,
  nextMessage,
  pushRelease,
  registerDevice,
} from './support/mqtt-devices';
import { DeviceStateService } from '../apps/server/src/device-state/device-state.service';
import { RolloutHealthRepository } from '../apps/server/src/rollouts/rollout-health.repository';
import { ADMIN_TOKEN, DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

/** The machine's Mosquitto, or the one TEST_MQTT_URL names. */
const MOSQUITTO_URL = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

/** Reads SSE text from `url` until `until` holds (or 5 s pass). */
async function readEvents(
  url: string,
  until: (text: string) => boolean,
  started: () => Promise<void>,
): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(url, { signal: controller.signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  const deadline = Date.now() + 5000;
  let kicked = false;
  while (!until(text) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    if (!kicked && text.includes(': ferry events')) {
      kicked = true;
      await started();
    }
  }
  controller.abort();
  return text;
}

describe('two server processes sharing one broker state through Redis (MQTT_CLUSTER=redis)', () => {
  const prefix = `ferry-test-${randomBytes(4).toString('hex')}:`;
  let a: TestServer;
  let b: TestServer;
  let fleet: TestFleet;
  let release: Release;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const env = { MQTT_CLUSTER: 'redis', REDIS_PREFIX: prefix };
    a = await startTestServer('postgres', env);
    if (a.config.database.kind !== 'postgres') throw new Error('expected PostgreSQL');
    b = await startTestServer('sqlite', { ...env, DATABASE_URL: a.config.database.url });
    fleet = await createFleet(a, 'Cluster');
    release = await pushRelease(a, fleet, 'cluster-v1');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await b?.close();
    await a?.close();
    const redis = new Redis(a.config.redisUrl);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('delivers a notice triggered through process B to a device connected to process A', async () => {
    expect(a.mqttPort).not.toBe(b.mqttPort);
    const device = await registerDevice(a, fleet);
    const client = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, device);
    clients.push(client);
    await client.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    const notice = nextMessage(client, deviceTopic(device.uuid, 'target'));
    const response = await b.api(`/v1/devices/${device.uuid}/target`, {
      method: 'PUT',
      json: { releaseId: release.id },
    });
    expect(response.status).toBe(200);
    expect(JSON.parse((await notice).toString())).toMatchObject({ releaseId: release.id });
  });

  it('keeps the retained notice in Redis for a device that reconnects to the other process', async () => {
    const device = await registerDevice(a, fleet);
    const first = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, device);
    await first.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    await first.endAsync();
    expect(
      (await a.api(`/v1/devices/${device.uuid}/target`, { method: 'PUT', json: { releaseId: release.id } }))
        .status,
    ).toBe(200);
    const onB = await connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, device, { clean: true });
    clients.push(onB);
    const notice = nextMessage(onB, deviceTopic(device.uuid, 'target'));
    await onB.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    expect(JSON.parse((await notice).toString())).toMatchObject({ releaseId: release.id });
  });

  it('keeps a device online when it moves from process A to process B', async () => {
    const device = await registerDevice(a, fleet);
    const onA = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, device);
    await eventually(async () => ((await getDevice(a, device.uuid)).online ? true : undefined));
    const closedOnA = new Promise<void>((resolve) => onA.once('close', () => resolve()));
    const onB = await connectDevice(`mqtt://127.0.0.1:${b.mqttPort}`, device);
    clients.push(onA, onB);
    // [MQTT-3.1.4-2] the older connection of the same client id is closed.
    await closedOnA;
    onA.end(true);
    await new Promise((r) => setTimeout(r, 500));
    // What each process has pending is written now: a wrong "offline" from A cannot hide in A's buffer.
    await Promise.all([a, b].map((server) => server.app.get(DeviceStateService).flush()));
    expect((await getDevice(a, device.uuid)).online).toBe(true);
    // Whichever write lands last, A must not have taken the move for the device going offline.
    const health = await a.app
      .get(RolloutHealthRepository, { strict: false })
      .countsByDevice([device.uuid], '2000-01-01T00:00:00.000Z', new Date(Date.now() + 60_000).toISOString());
    expect(health.get(device.uuid)?.get('offline') ?? 0).toBe(0);
  });

  it('streams events of process A to an SSE client of process B, and kicks a device deprovisioned through B', async () => {
    const device = await registerDevice(a, fleet);
    const client = await connectDevice(`mqtt://127.0.0.1:${a.mqttPort}`, device);
    clients.push(client);
    const text = await readEvents(
      `${b.url}/v1/events?token=${ADMIN_TOKEN}&fleet=${fleet.slug}`,
      (t) => t.includes('"status":"installing"'),
      async () => {
        await client.publishAsync(
          deviceTopic(device.uuid, 'state'),
          JSON.stringify({ status: 'installing' }),
          { qos: 1 },
        );
      },
    );
    expect(text).toContain(device.uuid);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect((await b.api(`/v1/devices/${device.uuid}`, { method: 'DELETE' })).status).toBe(204);
    await closed;
    expect(
      await connectCode(`mqtt://127.0.0.1:${a.mqttPort}`, {
        clientId: device.uuid,
        username: device.uuid,
        password: device.apiKey,
      }),
    ).toBe(4);
  });
});

describe.each(DATABASE_KINDS)(`an external broker (MQTT_URL, Mosquitto ${MOSQUITTO_URL}) (%s)`, (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let release: Release;
  const clients: MqttClient[] = [];
  const retainedTopics: string[] = [];

  beforeAll(async () => {
    server = await startTestServer(kind, { MQTT_URL: MOSQUITTO_URL });
    fleet = await createFleet(server, 'External');
    release = await pushRelease(server, fleet, 'external-v1');
  });
  afterAll(async () => {
    // Leave nothing retained on the shared Mosquitto.
    const cleaner = await connectAsync(MOSQUITTO_URL, { protocolVersion: 4, reconnectPeriod: 0 });
    for (const topic of retainedTopics) await cleaner.publishAsync(topic, '', { qos: 1, retain: true });
    await cleaner.endAsync();
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await server.close();
  });

  it('runs no broker of its own', () => {
    expect(server.mqttPort).toBeNull();
  });

  it('publishes notices to devices on Mosquitto and takes in their state and presence', async () => {
    const device = await registerDevice(server, fleet);
    retainedTopics.push(deviceTopic(device.uuid, 'target'), deviceTopic(device.uuid, 'presence'));
    const client = await connectDevice(MOSQUITTO_URL, device, {
      clean: true,
      will: {
        topic: deviceTopic(device.uuid, 'presence'),
        payload: Buffer.from('{"status":"offline"}'),
        qos: 1,
        retain: true,
      },
    });
    clients.push(client);
    await client.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    const notice = nextMessage(client, deviceTopic(device.uuid, 'target'));
    expect(
      (
        await server.api(`/v1/devices/${device.uuid}/target`, {
          method: 'PUT',
          json: { releaseId: release.id },
        })
      ).status,
    ).toBe(200);
    expect(JSON.parse((await notice).toString())).toMatchObject({ releaseId: release.id, fleetId: fleet.id });
    await client.publishAsync(deviceTopic(device.uuid, 'presence'), JSON.stringify({ status: 'online' }), {
      qos: 1,
      retain: true,
    });
    await client.publishAsync(
      deviceTopic(device.uuid, 'state'),
      JSON.stringify({ status: 'downloading', releaseId: release.id, bytesDone: 5, bytesTotal: 10 }),
      { qos: 1 },
    );
    const seen = await eventually(async () => {
      const d = await getDevice(server, device.uuid);
      return d.online && d.status === 'downloading' ? d : undefined;
    });
    expect(seen.report).toMatchObject({ bytesDone: 5, bytesTotal: 10 });
    // An unclean end makes Mosquitto publish the device's last will.
    client.stream.destroy();
    await eventually(async () => ((await getDevice(server, device.uuid)).online ? undefined : true));
  });

  it('ignores state for devices it does not know and malformed payloads', async () => {
    const stranger = randomBytes(16).toString('hex');
    const client = await connectAsync(MOSQUITTO_URL, { protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(client);
    await client.publishAsync(deviceTopic(stranger, 'state'), JSON.stringify({ status: 'running' }), {
      qos: 1,
    });
    await client.publishAsync(deviceTopic(stranger, 'state'), 'not json', { qos: 1 });
    const stats = await eventually(async () => {
      const s = (await (await server.api('/v1/mqtt/stats')).json()) as {
        mode: string;
        dropped: Record<string, number>;
        state: { unknownDevices: number };
      };
      return s.state.unknownDevices >= 1 && (s.dropped.malformed_json ?? 0) >= 1 ? s : undefined;
    });
    expect(stats.mode).toBe('external');
    expect((await server.api(`/v1/devices/${stranger}`)).status).toBe(404);
  });
});

describe('two server replicas on one external broker with MQTT_SHARED_GROUP', () => {
  let a: TestServer;
  let b: TestServer;
  let fleet: TestFleet;
  const topics: string[] = [];

  beforeAll(async () => {
    const env = {
      MQTT_URL: MOSQUITTO_URL,
      MQTT_SHARED_GROUP: `ferry-test-${randomBytes(4).toString('hex')}`,
    };
    a = await startTestServer('postgres', env);
    if (a.config.database.kind !== 'postgres') throw new Error('expected PostgreSQL');
    b = await startTestServer('sqlite', { ...env, DATABASE_URL: a.config.database.url });
    fleet = await createFleet(a, 'Replicas');
  });
  afterAll(async () => {
    const cleaner = await connectAsync(MOSQUITTO_URL, { protocolVersion: 4, reconnectPeriod: 0 });
    for (const topic of topics) await cleaner.publishAsync(topic, '', { qos: 1, retain: true });
    await cleaner.endAsync();
    await b?.close();
    await a?.close();
  });

  it('takes in each device report once, split between the replicas', async () => {
    const accepted = async (server: TestServer): Promise<number> =>
      ((await (await server.api('/v1/mqtt/stats')).json()) as { accepted: number }).accepted;
    const before = (await accepted(a)) + (await accepted(b));
    const device = await registerDevice(a, fleet);
    topics.push(deviceTopic(device.uuid, 'presence'));
    const client = await connectDevice(MOSQUITTO_URL, device, { clean: true });
    const publish = (i: number) =>
      client.publishAsync(
        deviceTopic(device.uuid, 'state'),
        JSON.stringify({ status: i === 20 ? 'downloaded' : 'downloading', bytesDone: i, bytesTotal: 20 }),
        { qos: 1 },
      );
    for (let i = 1; i < 20; i += 1) await publish(i);
    // The replicas order a device's reports by when they took them in, so the newest is sent once
    // both have taken in the others: sent back to back, a busy replica could take in an older
    // report after the other replica took in the newest.
    await eventually(async () =>
      (await accepted(a)) + (await accepted(b)) - before >= 19 ? true : undefined,
    );
    await publish(20);
    await client.endAsync();
    const total = await eventually(async () => {
      const sum = (await accepted(a)) + (await accepted(b)) - before;
      return sum >= 20 ? sum : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    // Without the shared subscription each replica would take in all 20.
    expect((await accepted(a)) + (await accepted(b)) - before).toBe(20);
    expect(total).toBe(20);
    // After both replicas flushed (FERRY_STATE_FLUSH_MS), the newest report is what is stored: a late
    // older report from the other replica does not overwrite it.
    // Both flushes can take longer than FERRY_STATE_FLUSH_MS on a loaded machine: wait for the
    // newest, then once more for any late flush, and judge what stays stored.
    await eventually(
      async () => ((await getDevice(b, device.uuid)).status === 'downloaded' ? true : undefined),
      10_000,
      'the newest report stored',
    );
    await new Promise((r) => setTimeout(r, 1300));
    const stored = await getDevice(b, device.uuid);
    expect(stored.status).toBe('downloaded');
    expect(stored.report?.bytesDone).toBe(20);
  });
});

describe.each(DATABASE_KINDS)('MQTT transports and throttling on the embedded broker (%s)', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let release: Release;
  let work: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(work, 'key.pem'),
        '-out',
        join(work, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server = await startTestServer(kind, {
      MQTT_WS: 'true',
      MQTT_TLS_CERT: join(work, 'cert.pem'),
      MQTT_TLS_KEY: join(work, 'key.pem'),
      MQTT_AUTH_FAILURES_PER_MINUTE: '3',
    });
    fleet = await createFleet(server, 'Transports');
    release = await pushRelease(server, fleet, 'tls-v1');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('serves devices over TLS and over WebSocket at /mqtt', async () => {
    const device = await registerDevice(server, fleet);
    const tls = await connectDevice(`mqtts://127.0.0.1:${server.mqttPort}`, device, {
      ca: readFileSync(join(work, 'cert.pem')),
      clean: true,
    });
    clients.push(tls);
    await tls.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    const notice = nextMessage(tls, deviceTopic(device.uuid, 'target'));
    await server.api(`/v1/devices/${device.uuid}/target`, { method: 'PUT', json: { releaseId: release.id } });
    expect(JSON.parse((await notice).toString())).toMatchObject({ releaseId: release.id });
    await tls.endAsync();
    // Plain MQTT is not served on a TLS port.
    expect(
      await connectCode(`mqtt://127.0.0.1:${server.mqttPort}`, {
        clientId: device.uuid,
        username: device.uuid,
        password: device.apiKey,
        connectTimeout: 1000,
      }),
    ).not.toBe(0);
    const ws = await connectDevice(`${server.url.replace('http', 'ws')}/mqtt`, device, { clean: true });
    clients.push(ws);
    const retained = nextMessage(ws, deviceTopic(device.uuid, 'target'));
    await ws.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
    expect(JSON.parse((await retained).toString())).toMatchObject({ releaseId: release.id });
  });

  it('throttles failed MQTT logins per source address, then refuses even the right key for a while', async () => {
    const device = await registerDevice(server, fleet);
    const url = `${server.url.replace('http', 'ws')}/mqtt`;
    const attempt = (password: string): Promise<number> =>
      connectCode(url, { clientId: device.uuid, username: device.uuid, password });
    expect([await attempt('wrong-1'), await attempt('wrong-2'), await attempt('wrong-3')]).toEqual([4, 4, 4]);
    // 3: "server unavailable": come back later.
    expect(await attempt(device.apiKey)).toBe(3);
  });
});
