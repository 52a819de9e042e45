import { Socket, createConnection } from 'node:net';
import fc from 'fast-check';
import { fuzzRuns } from '../support/fuzz';
import {
  TestDevice,
  connectCode,
  connectDevice,
  createFleet,
  nextMessage,
  registerDevice,
} from '../support/mqtt-devices';
import { connectPacket } from '../support/raw-mqtt';
import { TestServer, DATABASE_KINDS, startTestServer } from '../support/test-server';

/** Sends raw bytes on a fresh TCP connection; resolves when the broker closes it or after `ms`. */
function sendRaw(port: number, chunks: Buffer[], ms = 1500): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const socket: Socket = createConnection({ host: '127.0.0.1', port });
    let settled = false;
    const finish = (how: 'closed' | 'open'): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(how);
    };
    const timer = setTimeout(() => finish('open'), ms);
    socket.on('error', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
    });
    // Read (and ignore) what the broker answers, so its FIN is seen.
    socket.resume();
  });
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe.each(DATABASE_KINDS)('MQTT broker under malformed packets from a raw socket (%s)', (kind) => {
  let server: TestServer;
  let port: number;
  let device: TestDevice;

  beforeAll(async () => {
    server = await startTestServer(kind, { MQTT_AUTH_FAILURES_PER_MINUTE: '1000' });
    port = server.mqttPort as number;
    device = await registerDevice(server, await createFleet(server, 'Raw'));
  });
  afterAll(async () => server.close());

  const stillServes = async (): Promise<void> => {
    const client = await connectDevice(`mqtt://127.0.0.1:${port}`, device, { clean: true });
    const topic = `ferry/v1/devices/${device.uuid}/target`;
    expect(client.connected).toBe(true);
    await client.endAsync();
    expect(topic).toContain(device.uuid);
  };

  it.each([
    ['garbage bytes', [hex('deadbeef cafebabe 00ff')]],
    ['a PUBLISH before CONNECT', [hex('30 0a 0004 74657374 68656c6c6f')]],
    ['an invalid remaining-length varint', [hex('10 ff ff ff ff 7f')]],
    ['a CONNECT with a wrong protocol name', [hex('10 10 0004 4d515858 04 02 001e 0004 74657374')]],
    ['a CONNECT with protocol level 9', [hex('10 10 0004 4d515454 09 02 001e 0004 74657374')]],
    ['a CONNECT with the reserved flag set', [hex('10 10 0004 4d515454 04 03 001e 0004 74657374')]],
    ['a remaining length of 256 MB', [hex('30 ff ff ff 7f')]],
    ['a CONNECT with a wrong password', [connectPacket('x', 'nobody', 'nothing')]],
  ])('closes the connection on %s and keeps serving devices', async (_what, chunks) => {
    expect(await sendRaw(port, chunks)).toBe('closed');
    await stillServes();
  });

  it('closes a connection that sends a second CONNECT [MQTT-3.1.0-2]', async () => {
    const connect = connectPacket(device.uuid, device.uuid, device.apiKey);
    expect(await sendRaw(port, [connect, connect])).toBe('closed');
    await stillServes();
  });

  it('keeps a half-sent CONNECT waiting, and keeps serving others meanwhile', async () => {
    const waiting = sendRaw(port, [hex('10 20 0004 4d51')], 1000);
    await stillServes();
    expect(await waiting).toBe('open');
  });

  it('survives random byte streams (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 4 }),
        async (chunks) => {
          await sendRaw(
            port,
            chunks.map((c) => Buffer.from(c)),
            300,
          );
          return true;
        },
      ),
      { numRuns: fuzzRuns(200) },
    );
    await stillServes();
    const client = await connectDevice(`mqtt://127.0.0.1:${port}`, device, { clean: false });
    const notice = nextMessage(client, `ferry/v1/devices/${device.uuid}/target`, 500).catch(() => null);
    expect(client.connected).toBe(true);
    await notice;
    await client.endAsync();
  });
});

describe.each(DATABASE_KINDS)('brute force of device keys (%s)', (kind) => {
  let server: TestServer;
  let device: TestDevice;

  beforeAll(async () => {
    server = await startTestServer(kind, {
      MQTT_AUTH_FAILURES_PER_MINUTE: '5',
      FERRY_REGISTRATION_FAILURES_PER_MINUTE: '5',
    });
    device = await registerDevice(server, await createFleet(server, 'Brute'));
  });
  afterAll(async () => server.close());

  it('is throttled over MQTT: after 5 wrong keys even the right one is refused for a while', async () => {
    const url = `mqtt://127.0.0.1:${server.mqttPort}`;
    const codes: number[] = [];
    for (let i = 0; i < 5; i += 1)
      codes.push(
        await connectCode(url, {
          clientId: `g${i}`,
          username: device.uuid,
          password: `guess-${i}-${'x'.repeat(40)}`,
        }),
      );
    expect(codes.every((c) => c === 4 || c === 5)).toBe(true);
    const right = await connectCode(url, {
      clientId: device.uuid,
      username: device.uuid,
      password: device.apiKey,
    });
    expect(right).not.toBe(0);
  });

  it('is throttled over HTTP: wrong device keys get 401, then 429 with Retry-After', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const response = await server.api('/v1/device/me', { token: `wrong-${i}-${'y'.repeat(40)}` });
      statuses.push(response.status);
    }
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    const right = await server.api('/v1/device/me', { token: device.apiKey });
    expect(right.status).toBe(429);
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
