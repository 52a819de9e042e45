import { Kysely } from 'kysely';
import { MqttClient } from 'mqtt';
import { DeviceVariables, Variable, VariableList, VariablesNotice, deviceTopic } from '@ferry/protocol';
import { DATABASE } from '../apps/server/src/database/database.token';
import { Database } from '../apps/server/src/database/database.types';
import {
  TestDevice,
  TestFleet,
  connectDevice,
  createFleet,
  eventually,
  getDevice,
  nextMessage,
  pushRelease,
  registerDevice,
  subscribeCodes,
} from './support/mqtt-devices';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

describe.each(DATABASE_KINDS)('configuration variables on %s', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let device: TestDevice;
  let other: TestDevice;
  let client: MqttClient | null = null;

  beforeAll(async () => {
    server = await startTestServer(kind);
    fleet = await createFleet(server, 'Variables');
    device = await registerDevice(server, fleet);
    other = await registerDevice(server, fleet);
    // Its image is tagged app:1, so the release has one service, "app".
    await pushRelease(server, fleet, 'v1');
  });
  afterAll(async () => {
    await client?.endAsync(true);
    await server.close();
  });

  const set = (owner: string, body: unknown, token?: string | null): Promise<Response> =>
    server.api(`/v1/${owner}/variables`, {
      method: 'POST',
      json: body,
      ...(token !== undefined ? { token } : {}),
    });
  const list = async (owner: string, query = ''): Promise<VariableList> => {
    const response = await server.api(`/v1/${owner}/variables${query}`);
    expect(response.status).toBe(200);
    return (await response.json()) as VariableList;
  };
  const fetchOwn = (d: TestDevice, etag?: string): Promise<Response> =>
    server.api('/v1/device/variables', { token: d.apiKey, headers: etag ? { 'if-none-match': etag } : {} });
  const own = async (d: TestDevice): Promise<DeviceVariables> => {
    const response = await fetchOwn(d);
    expect(response.status).toBe(200);
    return (await response.json()) as DeviceVariables;
  };
  const fleetPath = (): string => `fleets/${fleet.slug}`;
  const devicePath = (d: TestDevice = device): string => `devices/${d.uuid}`;

  it('resolves four levels, the most specific winning, per service for the device', async () => {
    expect((await set(fleetPath(), { name: 'LEVEL', value: 'fleet' })).status).toBe(201);
    expect((await set(fleetPath(), { name: 'LEVEL', value: 'fleet+app', service: 'app' })).status).toBe(201);
    expect((await set(devicePath(), { name: 'LEVEL', value: 'device' })).status).toBe(201);
    expect((await set(devicePath(), { name: 'LEVEL', value: 'device+app', service: 'app' })).status).toBe(
      201,
    );
    expect((await set(fleetPath(), { name: 'ONLY_FLEET', value: 'f' })).status).toBe(201);
    // Replacing a value answers 200.
    expect((await set(fleetPath(), { name: 'ONLY_FLEET', value: 'f2' })).status).toBe(200);

    const mine = await own(device);
    expect(mine).toEqual({
      version: 6,
      fleet: { LEVEL: 'fleet', ONLY_FLEET: 'f2' },
      fleetServices: { app: { LEVEL: 'fleet+app' } },
      device: { LEVEL: 'device' },
      deviceServices: { app: { LEVEL: 'device+app' } },
    });
    // The other device inherits only the fleet's levels.
    const theirs = await own(other);
    expect(theirs).toEqual({ ...mine, version: 4, device: {}, deviceServices: {} });

    // The operator sees where each effective value comes from.
    const effective = await list(devicePath(), '?service=app');
    expect(effective.variables.map((v) => [v.name, v.value, v.level])).toEqual([
      ['LEVEL', 'device+app', 'device+service'],
      ['ONLY_FLEET', 'f2', 'fleet'],
    ]);
    expect((await list(fleetPath(), '?service=app')).variables.map((v) => [v.name, v.level])).toEqual([
      ['LEVEL', 'fleet+service'],
      ['ONLY_FLEET', 'fleet'],
    ]);
    // Unresolved, a device's list holds every setting of the four levels; the fleet's only its own.
    expect((await list(devicePath())).variables).toHaveLength(5);
    expect((await list(fleetPath())).variables.map((v) => v.level).sort()).toEqual([
      'fleet',
      'fleet',
      'fleet+service',
    ]);

    // Deleting the device+service value lets the device level win again.
    expect(
      (await server.api(`/v1/${devicePath()}/variables/LEVEL?service=app`, { method: 'DELETE' })).status,
    ).toBe(204);
    expect((await own(device)).deviceServices).toEqual({});
    expect(
      (await server.api(`/v1/${devicePath()}/variables/LEVEL?service=app`, { method: 'DELETE' })).status,
    ).toBe(404);
  });

  it('never shows a secret back to the operator, only to the device, and keeps the flag on replace', async () => {
    const created = await set(fleetPath(), { name: 'API_TOKEN', value: 's3cr3t-value', secret: true });
    expect(created.status).toBe(201);
    const body = await created.text();
    expect(body).not.toContain('s3cr3t');
    expect(JSON.parse(body)).toMatchObject({ name: 'API_TOKEN', value: null, secret: true });
    // Replaced without saying `secret`: still secret.
    expect((await set(fleetPath(), { name: 'API_TOKEN', value: 'n3w-s3cr3t' })).status).toBe(200);
    for (const path of [fleetPath(), devicePath(), `${devicePath()}?service=app`]) {
      const [owner, query] = path.split('?');
      const text = await (await server.api(`/v1/${owner}/variables${query ? `?${query}` : ''}`)).text();
      expect(text).not.toContain('s3cr3t');
      const token = (JSON.parse(text) as VariableList).variables.find(
        (v) => v.name === 'API_TOKEN',
      ) as Variable;
      expect(token).toMatchObject({ value: null, secret: true });
    }
    expect((await own(device)).fleet.API_TOKEN).toBe('n3w-s3cr3t');
  });

  it('tells a device of a change over MQTT within seconds, versions it, and answers 304 while unchanged', async () => {
    client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    expect(await subscribeCodes(client, [deviceTopic(device.uuid, 'variables')])).toEqual([1]);
    // Another device's notices are refused.
    expect(await subscribeCodes(client, [deviceTopic(other.uuid, 'variables')])).toEqual([0x80]);
    const before = await fetchOwn(device);
    const etag = before.headers.get('etag') as string;
    const version = ((await before.json()) as DeviceVariables).version;
    expect(etag).toBe(`"${version}"`);
    expect((await fetchOwn(device, etag)).status).toBe(304);

    const notice = nextMessage(client, deviceTopic(device.uuid, 'variables'), 10_000);
    expect((await set(devicePath(), { name: 'SITE', value: 'north-7' })).status).toBe(201);
    const message = JSON.parse((await notice).toString()) as VariablesNotice;
    expect(message.version).toBe(version + 1);
    expect(JSON.stringify(message)).not.toContain('north-7');
    const after = await fetchOwn(device, etag);
    expect(after.status).toBe(200);
    expect(((await after.json()) as DeviceVariables).device.SITE).toBe('north-7');

    // A fleet-level change reaches every device of the fleet, each with its own version.
    const next = nextMessage(client, deviceTopic(device.uuid, 'variables'), 10_000);
    expect((await set(fleetPath(), { name: 'REGION', value: 'eu' })).status).toBe(201);
    expect((JSON.parse((await next).toString()) as VariablesNotice).version).toBe(version + 2);
    expect((await own(other)).fleet.REGION).toBe('eu');
  });

  it('shows the version a device should run and the one it reports running', async () => {
    const target = (await own(device)).version;
    const report = await server.api('/v1/device/state', {
      method: 'POST',
      token: device.apiKey,
      json: { status: 'running', variablesVersion: target },
    });
    expect(report.status).toBe(202);
    const seen = await eventually(async () => {
      const d = await getDevice(server, device.uuid);
      return d.variables.reportedVersion === target ? d : undefined;
    });
    expect(seen.variables.version).toBe(target);
    expect((await list(devicePath())).reportedVersion).toBe(target);
    for (const bad of [-1, 1.5, '3', 2 ** 60])
      expect(
        (
          await server.api('/v1/device/state', {
            method: 'POST',
            token: device.apiKey,
            json: { status: 'running', variablesVersion: bad },
          })
        ).status,
      ).toBe(400);
  });

  describe('hostile input', () => {
    it.each([
      ['a name starting with a digit', { name: '1ABC', value: 'x' }, /name/],
      ['a dash', { name: 'A-B', value: 'x' }, /name/],
      ['a space', { name: 'A B', value: 'x' }, /name/],
      ['shell syntax', { name: '$(reboot)', value: 'x' }, /name/],
      ['SQL', { name: "A'; DROP TABLE variables; --", value: 'x' }, /name/],
      ['non-ASCII', { name: 'ÄBC', value: 'x' }, /name/],
      ['an empty name', { name: '', value: 'x' }, /name/],
      ['a prototype key', { name: '__proto__', value: 'x' }, /reserved/],
      ['a name too long', { name: 'A'.repeat(129), value: 'x' }, /name/],
      ["Ferry's namespace", { name: 'FERRY_UUID', value: 'x' }, /reserved/],
      ['a NUL in the value', { name: 'A', value: 'a\u0000b' }, /NUL/],
      ['a number as value', { name: 'A', value: 5 }, /value/],
      ['no value', { name: 'A' }, /value/],
      ['a non-boolean secret', { name: 'A', value: 'x', secret: 'yes' }, /secret/],
      ['an unknown field', { name: 'A', value: 'x', level: 'device' }, /level|Unrecognized/i],
      ['a bad service name', { name: 'A', value: 'x', service: '../app' }, /service/],
      ['an array', [{ name: 'A', value: 'x' }], /variable/],
    ])('refuses %s with 400 naming what is wrong, for fleets and devices', async (_what, body, reason) => {
      for (const owner of [fleetPath(), devicePath()]) {
        const response = await set(owner, body);
        expect(response.status).toBe(400);
        expect(((await response.json()) as { message: string }).message).toMatch(reason);
      }
    });

    it('refuses a value over 8 KiB with 413 naming the variable, and a body over 1 MB', async () => {
      const big = await set(fleetPath(), { name: 'BIG', value: 'é'.repeat(4097) });
      expect(big.status).toBe(413);
      expect(((await big.json()) as { message: string }).message).toMatch(/BIG.*8194 bytes.*8192/);
      expect((await set(fleetPath(), { name: 'BIG', value: 'x'.repeat(8192) })).status).toBe(201);
      expect((await set(devicePath(), { name: 'HUGE', value: 'x'.repeat(2_000_000) })).status).toBe(413);
    });

    it('answers 404 for an unknown fleet, device, service or variable', async () => {
      for (const path of [
        'fleets/nope',
        "fleets/x'%20or%20'1'='1",
        'devices/0123456789abcdef0123456789abcdef',
      ]) {
        expect((await server.api(`/v1/${path}/variables`)).status).toBe(404);
        expect((await set(path, { name: 'A', value: 'x' })).status).toBe(404);
        expect((await server.api(`/v1/${path}/variables/A`, { method: 'DELETE' })).status).toBe(404);
      }
      const service = await set(fleetPath(), { name: 'A', value: 'x', service: 'nosuch' });
      expect(service.status).toBe(404);
      expect(((await service.json()) as { message: string }).message).toMatch(/nosuch.*its services: app/);
      expect((await server.api(`/v1/${fleetPath()}/variables?service=nosuch`)).status).toBe(404);
      expect((await server.api(`/v1/${fleetPath()}/variables/NEVER_SET`, { method: 'DELETE' })).status).toBe(
        404,
      );
    });

    it('refuses bad names and queries on list and delete', async () => {
      expect((await server.api(`/v1/${fleetPath()}/variables/A-B`, { method: 'DELETE' })).status).toBe(400);
      expect((await server.api(`/v1/${fleetPath()}/variables?service=a/b`)).status).toBe(400);
      expect((await server.api(`/v1/${fleetPath()}/variables?service=app&admin=1`)).status).toBe(400);
      expect(
        (
          await server.api(`/v1/${fleetPath()}/variables/A?service=${encodeURIComponent("app' or 1=1")}`, {
            method: 'DELETE',
          })
        ).status,
      ).toBe(400);
    });

    it('lets only the admin token change variables and only a device key read them resolved', async () => {
      const paths = [`/v1/${fleetPath()}/variables`, `/v1/${devicePath()}/variables`];
      for (const path of paths) {
        for (const token of [null, 'wrong-token-wrong-token', device.apiKey]) {
          expect((await server.api(path, { token })).status).toBe(401);
          expect(
            (await server.api(path, { method: 'POST', token, json: { name: 'A', value: 'x' } })).status,
          ).toBe(401);
          expect((await server.api(`${path}/REGION`, { method: 'DELETE', token })).status).toBe(401);
        }
      }
      expect((await server.api('/v1/device/variables')).status).toBe(401);
      expect((await server.api('/v1/device/variables', { token: null })).status).toBe(401);
      expect((await server.api('/v1/device/variables', { token: 'x'.repeat(43) })).status).toBe(401);
    });

    it('lost nothing to any of it', async () => {
      const mine = await own(device);
      expect(mine.fleet).toMatchObject({ LEVEL: 'fleet', ONLY_FLEET: 'f2', REGION: 'eu' });
      expect(mine.device).toEqual({ LEVEL: 'device', SITE: 'north-7' });
      expect(mine.fleet.BIG).toHaveLength(8192);
      expect(Object.keys(mine.fleet)).not.toEqual(expect.arrayContaining(['A', 'HUGE']));
    });
  });

  it("drops a device's variables with the device", async () => {
    const gone = await registerDevice(server, fleet);
    expect((await set(devicePath(gone), { name: 'SOON_GONE', value: 'x' })).status).toBe(201);
    expect((await server.api(`/v1/${devicePath(gone)}`, { method: 'DELETE' })).status).toBe(204);
    expect((await server.api(`/v1/${devicePath(gone)}/variables`)).status).toBe(404);
    // The rows went with the device (foreign key, on delete cascade).
    const db = server.app.get<symbol, Kysely<Database>>(DATABASE, { strict: false });
    expect(
      await db.selectFrom('variables').select('name').where('device_uuid', '=', gone.uuid).execute(),
    ).toEqual([]);
  });
});
