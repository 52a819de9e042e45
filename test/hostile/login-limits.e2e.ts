import { randomBytes } from 'node:crypto';
import { TestDevice, connectCode, createFleet, registerDevice } from '../support/mqtt-devices';
import { awaitRoomInMinute } from '../support/minute-window';
import { freshPostgresDatabase } from '../support/postgres';
import { deleteRedisKeys, testRedisPrefix } from '../support/redis-keys';
import { ServerProcess, startServerProcess } from '../support/server-process';
import { TestServer, DATABASE_KINDS, startTestServer } from '../support/test-server';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A registration with a wrong provisioning key, claiming to come from `forwardedFor`. */
async function badRegistration(server: TestServer, forwardedFor: string): Promise<number> {
  const response = await server.api('/v1/device/register', {
    method: 'POST',
    json: { provisioningKey: 'fp_wrong-key-0123456789' },
    token: null,
    headers: { 'x-forwarded-for': forwardedFor },
  });
  return response.status;
}

describe.each(DATABASE_KINDS)('X-Forwarded-For and the failure limits (TRUSTED_PROXIES) (%s)', (kind) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('ignores X-Forwarded-For by default: a new spoofed address per request still hits the limit', async () => {
    const server = await startTestServer(kind, { FERRY_REGISTRATION_FAILURES_PER_MINUTE: '5' });
    servers.push(server);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) statuses.push(await badRegistration(server, `203.0.113.${i + 1}`));
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });

  it('believes X-Forwarded-For from a proxy the operator named, counting each client apart', async () => {
    const server = await startTestServer(kind, {
      FERRY_REGISTRATION_FAILURES_PER_MINUTE: '5',
      TRUSTED_PROXIES: '127.0.0.1',
    });
    servers.push(server);
    const spread: number[] = [];
    for (let i = 0; i < 7; i += 1) spread.push(await badRegistration(server, `203.0.113.${i + 1}`));
    expect(spread).toEqual([401, 401, 401, 401, 401, 401, 401]);
    const one: number[] = [];
    for (let i = 0; i < 6; i += 1) one.push(await badRegistration(server, '198.51.100.7'));
    expect(one).toEqual([401, 401, 401, 401, 401, 429]);
  });
});

// PostgreSQL only: two server processes share one database, which SQLite in each DATA_DIR cannot be.
describe('failed logins counted across two server processes sharing Redis', () => {
  const prefix = testRedisPrefix();
  let database: { url: string; drop: () => Promise<void> };
  let one: ServerProcess;
  let two: ServerProcess;
  let deviceA: TestDevice;
  let deviceB: TestDevice;

  beforeAll(async () => {
    database = await freshPostgresDatabase();
    const env = {
      REDIS_PREFIX: prefix,
      DATABASE_URL: database.url,
      MQTT_AUTH_FAILURES_PER_MINUTE: '5',
      FERRY_REGISTRATION_FAILURES_PER_MINUTE: '5',
    };
    one = await startServerProcess(env);
    two = await startServerProcess(env);
    const fleet = await createFleet(one, 'Limits');
    deviceA = await registerDevice(one, fleet);
    deviceB = await registerDevice(one, fleet);
    // The three tests below expect exact counts over a few seconds: keep them inside one minute.
    await awaitRoomInMinute(40);
  }, 120_000);
  afterAll(async () => {
    await two?.stop();
    await one?.stop();
    await database?.drop();
    await deleteRedisKeys(REDIS_URL, prefix);
  });

  const login = (server: ServerProcess, device: TestDevice, password: string): Promise<number> =>
    connectCode(`mqtt://127.0.0.1:${server.mqttPort}`, {
      clientId: device.uuid,
      username: device.uuid,
      password,
    });

  it("still accepts device B's right key from an address that sent 10 bad ones for device A", async () => {
    const codes: number[] = [];
    for (let i = 0; i < 10; i += 1) codes.push(await login(i % 2 ? one : two, deviceA, `wrong-${i}`));
    // 5 refused as wrong, then "server unavailable": the limit holds across both processes.
    expect(codes).toEqual([4, 4, 4, 4, 4, 3, 3, 3, 3, 3]);
    expect(await login(one, deviceA, deviceA.apiKey)).toBe(3);
    expect(await login(two, deviceA, deviceA.apiKey)).toBe(3);
    expect(await login(one, deviceB, deviceB.apiKey)).toBe(0);
    expect(await login(two, deviceB, deviceB.apiKey)).toBe(0);
  });

  it('limits one address trying identity after identity (10× the per-identity limit)', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 46; i += 1) {
      const stranger = { uuid: randomBytes(16).toString('hex'), apiKey: 'x', fleetId: '' };
      codes.push(await login(i % 2 ? one : two, stranger, `guess-${i}`));
    }
    // 5 failures for device A count too: 50 from this address in all.
    expect(codes.slice(0, 45).every((c) => c === 4)).toBe(true);
    expect(codes[45]).toBe(3);
    expect(await login(one, deviceB, deviceB.apiKey)).toBe(3);
  });

  it('counts bad device keys over HTTP across both processes', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1)
      statuses.push(
        (await (i % 2 ? one : two).api('/v1/device/me', { token: `wrong-key-${i}-0123456789` })).status,
      );
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });
});
