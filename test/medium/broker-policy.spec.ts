import { MqttClient, connectAsync } from 'mqtt';
import { RegisteredDevice, deviceTopic } from '@ferry/protocol';
import { BrokerModule } from '../../apps/server/src/broker/broker.module';
import { BrokerService } from '../../apps/server/src/broker/broker.service';
import { MqttRepository } from '../../apps/server/src/broker/mqtt.repository';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { Medium, startMedium } from '../support/medium';
import { connectCode, connectDevice, delay, eventually, subscribeCodes } from '../support/mqtt-devices';
import { DATABASE_KINDS } from '../support/test-server';

const SERVER = { username: 'ferry-server', password: 'server-secret-of-the-medium-test' };

/**
 * The broker's access policy alone (BrokerModule: the embedded Aedes broker and BrokerService's
 * authenticate / authorizePublish / authorizeSubscribe / delivery rules), on a real database, with
 * mqtt.js clients over TCP. No HTTP server, no rollouts: a failure here is the policy's.
 */
describe.each(DATABASE_KINDS)('broker policy on %s', (kind) => {
  let m: Medium;
  let url: string;
  let a: RegisteredDevice;
  let b: RegisteredDevice;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    m = await startMedium(kind, [BrokerModule], {
      env: { MQTT_SERVER_USERNAME: SERVER.username, MQTT_SERVER_PASSWORD: SERVER.password },
    });
    url = `mqtt://127.0.0.1:${m.get(BrokerService).port()}`;
    const fleet = await m.get(FleetsService).create({ name: `broker ${kind}`, arch: 'amd64' });
    const { key } = await m.get(FleetsService).createKey(fleet.slug);
    const register = async (name: string) =>
      (await m.get(DevicesService).register({ provisioningKey: key, name }, '127.0.0.1')).device;
    a = await register('a');
    b = await register('b');
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });
  afterAll(() => m.close());

  const connect = async (d: RegisteredDevice): Promise<MqttClient> => {
    const client = await connectDevice(url, d, { clean: true });
    clients.push(client);
    return client;
  };
  const connectServer = async (): Promise<MqttClient> => {
    const client = await connectAsync(url, {
      protocolVersion: 4,
      clientId: `server-${kind}`,
      ...SERVER,
      reconnectPeriod: 0,
    });
    clients.push(client);
    return client;
  };
  const dropped = (reason: string) => m.get(BrokerService).stats().dropped[reason] ?? 0;

  it('CONNECT: a device only with its own key and its UUID as client id; the server with its credentials; nobody anonymous', async () => {
    const asA = { clientId: a.uuid, username: a.uuid };
    // [MQTT-3.2.2-3] CONNACK return codes: 2 identifier rejected, 4 bad user name or password, 5 not authorized.
    const cases: [string, Parameters<typeof connectCode>[1], number][] = [
      ['own key', { ...asA, password: a.apiKey }, 0],
      ["another device's key", { ...asA, password: b.apiKey }, 4],
      ['unknown UUID', { clientId: '0'.repeat(32), username: '0'.repeat(32), password: a.apiKey }, 4],
      ['not a UUID', { clientId: 'admin', username: 'admin', password: a.apiKey }, 4],
      ['anonymous', { clientId: a.uuid }, 5],
      ["another device's client id", { ...asA, clientId: b.uuid, password: a.apiKey }, 2],
      [
        "a will on another device's presence",
        {
          ...asA,
          password: a.apiKey,
          will: {
            topic: deviceTopic(b.uuid, 'presence'),
            payload: Buffer.from('{"status":"offline"}'),
            qos: 1,
            retain: true,
          },
        },
        5,
      ],
      ['server credentials', { clientId: 'tool', ...SERVER }, 0],
      ['server name, wrong password', { clientId: 'tool', username: SERVER.username, password: 'guess' }, 4],
    ];
    const codes: [string, number][] = [];
    for (const [name, options] of cases) codes.push([name, await connectCode(url, options)]);
    expect(codes).toEqual(cases.map(([name, , code]) => [name, code]));
  });

  it('CONNECT: a connected device’s key does not stay in the broker’s memory', async () => {
    await connect(a);
    // The embedded repository's Aedes instance (private: only this test looks inside it).
    const aedes = m.get<{ broker: { clients: Record<string, object> } }>(MqttRepository as never).broker;
    const client = aedes.clients[a.uuid];
    expect(client).toBeDefined();
    // Every Buffer reachable from the broker's client object (its parser keeps the CONNECT packet).
    const key = Buffer.from(a.apiKey);
    const found: string[] = [];
    const seen = new Set<unknown>();
    const walk = (value: unknown, path: string, depth: number): void => {
      if (value === null || typeof value !== 'object' || seen.has(value) || depth > 5) return;
      seen.add(value);
      if (Buffer.isBuffer(value)) {
        if (value.includes(key)) found.push(path);
        return;
      }
      for (const [name, child] of Object.entries(value)) walk(child, `${path}.${name}`, depth + 1);
    };
    walk(client, 'client', 0);
    expect(seen.size).toBeGreaterThan(20);
    expect(found).toEqual([]);
  });

  it('SUBSCRIBE: a device only inside its own subtree, never a wildcard above it or $SYS; the server anywhere', async () => {
    const client = await connect(a);
    const filters: [string, number][] = [
      [deviceTopic(a.uuid, 'target'), 1],
      [`ferry/v1/devices/${a.uuid}/+`, 1],
      [`ferry/v1/devices/${a.uuid}/#`, 1],
      [deviceTopic(b.uuid, 'target'), 128],
      [`ferry/v1/devices/${b.uuid}/#`, 128],
      ['ferry/v1/devices/+/target', 128],
      ['ferry/v1/devices/#', 128],
      ['#', 128],
      ['$SYS/#', 128],
      [`ferry/v1/devices/${a.uuid}/target/extra`, 128],
    ];
    const granted = await subscribeCodes(
      client,
      filters.map(([f]) => f),
    );
    // [MQTT-3.9.3] 0x80 is the failure return code of a SUBSCRIBE.
    expect(filters.map(([f], i) => [f, granted[i]])).toEqual(filters);
    const server = await connectServer();
    expect((await server.subscribeAsync('#', { qos: 1 }))[0]?.qos).toBe(1);
  });

  it('PUBLISH: a device only its own state and presence; the rest is dropped and counted, QoS 2 cuts the connection', async () => {
    const client = await connect(a);
    const forbidden = dropped('forbidden_topic');
    const retained = dropped('retained_state');
    await client.publishAsync(deviceTopic(b.uuid, 'state'), JSON.stringify({ status: 'failed' }), { qos: 1 });
    await client.publishAsync(deviceTopic(b.uuid, 'target'), JSON.stringify({ releaseId: 'x' }), { qos: 1 });
    await client.publishAsync(deviceTopic(a.uuid, 'target'), 'self-made target', { qos: 1 });
    await client.publishAsync('ferry/v1/other', 'x', { qos: 1 });
    await client.publishAsync(deviceTopic(a.uuid, 'state'), JSON.stringify({ status: 'idle' }), {
      qos: 1,
      retain: true,
    });
    expect(dropped('forbidden_topic') - forbidden).toBe(4);
    expect(dropped('retained_state') - retained).toBe(1);
    // Its own state is taken in.
    await client.publishAsync(deviceTopic(a.uuid, 'state'), JSON.stringify({ status: 'downloading' }), {
      qos: 1,
    });
    await eventually(async () => {
      await m.get(DeviceStateService).flush();
      const device = await m.get(DevicesService).get(a.uuid);
      return device.status === 'downloading' ? device : undefined;
    });
    expect((await m.get(DevicesService).get(b.uuid)).status).toBe('registered');
    expect(client.connected).toBe(true);
    const qos2 = dropped('qos2');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(deviceTopic(a.uuid, 'state'), JSON.stringify({ status: 'idle' }), { qos: 2 });
    await closed;
    expect(dropped('qos2') - qos2).toBe(1);
  });

  it('delivers to a device only its own target, even under a granted wildcard', async () => {
    const clientA = await connect(a);
    const clientB = await connect(b);
    const seenByA: string[] = [];
    const seenByB: string[] = [];
    clientA.on('message', (topic) => seenByA.push(topic));
    clientB.on('message', (topic) => seenByB.push(topic));
    await clientA.subscribeAsync(`ferry/v1/devices/${a.uuid}/#`, { qos: 1 });
    await clientB.subscribeAsync(deviceTopic(b.uuid, 'target'), { qos: 1 });
    const server = await connectServer();
    await server.publishAsync(deviceTopic(a.uuid, 'presence'), JSON.stringify({ status: 'online' }), {
      qos: 1,
    });
    await server.publishAsync(deviceTopic(a.uuid, 'state'), JSON.stringify({ status: 'idle' }), { qos: 1 });
    await server.publishAsync(deviceTopic(b.uuid, 'target'), JSON.stringify({ releaseId: 'for-b' }), {
      qos: 1,
    });
    await server.publishAsync(deviceTopic(a.uuid, 'target'), JSON.stringify({ releaseId: 'for-a' }), {
      qos: 1,
    });
    await eventually(async () => (seenByA.length > 0 && seenByB.length > 0 ? true : undefined));
    await delay(200);
    expect(seenByA).toEqual([deviceTopic(a.uuid, 'target')]);
    expect(seenByB).toEqual([deviceTopic(b.uuid, 'target')]);
  });
});
