import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MqttClient } from 'mqtt';
import { Release, deviceTopic } from '@ferry/protocol';
import { DeviceStateService } from '../apps/server/src/device-state/device-state.service';
import {
  TestDevice,
  TestFleet,
  connectCode,
  connectDevice,
  createFleet,
  delay,
  eventually,
  getDevice,
  nextMessage,
  pushRelease,
  registerDevice,
} from './support/mqtt-devices';
import { ADMIN_TOKEN, TestServer, startTestServer } from './support/test-server';

const run = promisify(execFile);

describe('MQTT push channel on the embedded broker', () => {
  let server: TestServer;
  let mqttUrl: string;
  let fleet: TestFleet;
  let other: TestFleet;
  let release: Release;
  const clients: MqttClient[] = [];
  const device = async (f: TestFleet = fleet): Promise<TestDevice> => registerDevice(server, f);
  const connect = async (d: TestDevice, options = {}): Promise<MqttClient> => {
    const client = await connectDevice(mqttUrl, d, options);
    clients.push(client);
    return client;
  };
  const stats = async (): Promise<{
    dropped: Record<string, number>;
    accepted: number;
    state: { flushes: number; rowsWritten: number };
  }> => (await (await server.api('/v1/mqtt/stats')).json()) as never;

  beforeAll(async () => {
    server = await startTestServer('sqlite', {
      MQTT_AUTH_FAILURES_PER_MINUTE: '1000',
      FERRY_STATE_FLUSH_MS: '300',
      FERRY_EVENTS_HEARTBEAT_SECONDS: '0.2',
    });
    mqttUrl = `mqtt://127.0.0.1:${server.mqttPort}`;
    fleet = await createFleet(server, 'Push');
    other = await createFleet(server, 'Other');
    release = await pushRelease(server, fleet, 'v1');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await server.close();
  });

  it('listens on a port of its own when MQTT_PORT=0', () => {
    expect(server.mqttPort).toBeGreaterThan(0);
    expect(server.mqttPort).not.toBe(1883);
  });

  it('refuses a wrong key, an unknown username, anonymous clients and a borrowed client id with the right CONNACK code', async () => {
    const a = await device();
    const b = await device();
    const base = { clientId: a.uuid, username: a.uuid };
    expect(await connectCode(mqttUrl, { ...base, password: b.apiKey })).toBe(4);
    expect(
      await connectCode(mqttUrl, {
        ...base,
        username: '0'.repeat(32),
        clientId: '0'.repeat(32),
        password: a.apiKey,
      }),
    ).toBe(4);
    expect(await connectCode(mqttUrl, { ...base, username: 'admin', password: ADMIN_TOKEN })).toBe(4);
    expect(await connectCode(mqttUrl, { clientId: a.uuid })).toBe(5);
    expect(await connectCode(mqttUrl, { ...base, clientId: b.uuid, password: a.apiKey })).toBe(2);
    expect(await connectCode(mqttUrl, { ...base, password: a.apiKey })).toBe(0);
    // Debian's mosquitto_sub sees the same refusal.
    const refused = await run('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(server.mqttPort),
      '-V',
      'mqttv311',
      '-i',
      a.uuid,
      '-u',
      a.uuid,
      '-P',
      'wrong-key',
      '-t',
      deviceTopic(a.uuid, 'target'),
      '-C',
      '1',
      '-W',
      '3',
    ]).then(
      () => null,
      (error: { stderr: string; code: number }) => error,
    );
    expect(refused?.stderr).toMatch(/bad user name or password|not authori[sz]ed/i);
  });
});
