import { createHash, randomBytes } from 'node:crypto';
import { sql, Kysely } from 'kysely';
import { DATABASE } from '../apps/server/src/database/database.token';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

describe.each(DATABASE_KINDS)('fleets, provisioning keys and devices on %s', (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(kind, { FERRY_REGISTRATION_FAILURES_PER_MINUTE: '50' });
  });
  afterAll(async () => server.close());

  const createFleet = async (name: string, arch = 'aarch64'): Promise<{ id: string; slug: string }> => {
    const response = await server.api('/v1/fleets', { method: 'POST', json: { name, arch } });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; slug: string };
  };
  const createKey = async (fleet: string): Promise<{ id: string; key: string }> => {
    const response = await server.api(`/v1/fleets/${fleet}/provisioning-keys`, { method: 'POST', json: {} });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; key: string };
  };
  const register = (body: unknown): Promise<Response> =>
    server.api('/v1/device/register', { method: 'POST', json: body, token: null });

  it('answers 401 on every operator endpoint without the admin token, and with a wrong one', async () => {
    for (const path of ['/v1/fleets', '/v1/devices', '/v1/fleets/x/releases', '/v1/releases/x']) {
      expect((await server.api(path, { token: null })).status).toBe(401);
      expect((await server.api(path, { token: 'wrong-token-wrong-token' })).status).toBe(401);
    }
    const body = (await (await server.api('/v1/fleets', { token: null })).json()) as { message: string };
    expect(body.message).toMatch(/Authorization: Bearer/);
  });

  it('creates fleets with unique slugs and finds them by id or slug', async () => {
    const first = await createFleet('Pumps North');
    const taken = await server.api('/v1/fleets', {
      method: 'POST',
      json: { name: 'Pumps  north', arch: 'amd64' },
    });
    expect(taken.status).toBe(409);
    expect(((await taken.json()) as { message: string }).message).toMatch(
      /slug "pumps-north" exists.*choose another name, or give another slug/,
    );
    const second = (await (
      await server.api('/v1/fleets', {
        method: 'POST',
        json: { name: 'Pumps North', arch: 'amd64', slug: 'pumps-north-2' },
      })
    ).json()) as { slug: string };
    const takenSlug = await server.api('/v1/fleets', {
      method: 'POST',
      json: { name: 'Other', arch: 'amd64', slug: 'pumps-north-2' },
    });
    expect(takenSlug.status).toBe(409);
    expect(first.slug).toBe('pumps-north');
    expect(second.slug).toBe('pumps-north-2');
    const byId = (await (await server.api(`/v1/fleets/${first.id}`)).json()) as {
      slug: string;
      signingPublicKey: string;
    };
    const bySlug = (await (await server.api('/v1/fleets/pumps-north')).json()) as { id: string };
    expect(byId.slug).toBe('pumps-north');
    expect(byId.signingPublicKey).toMatch(/BEGIN PUBLIC KEY/);
    expect(byId).not.toHaveProperty('signingPrivateKey');
    expect(bySlug.id).toBe(first.id);
    const list = (await (await server.api('/v1/fleets')).json()) as { slug: string }[];
    expect(list.map((f) => f.slug)).toEqual(expect.arrayContaining(['pumps-north', 'pumps-north-2']));
  });

  it.each([
    [{ name: 'x', arch: 'mips' }, /arch/],
    [{ arch: 'amd64' }, /name/],
    [{ name: 'x', arch: 'amd64', slug: 'Bad Slug' }, /slug/],
    [{ name: 'x', arch: 'amd64', admin: true }, /admin|Unrecognized/i],
  ])('refuses a bad fleet %j with 400 and the reason', async (body, reason) => {
    const response = await server.api('/v1/fleets', { method: 'POST', json: body });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { message: string }).message).toMatch(reason);
  });

  it('refuses malformed JSON with 400', async () => {
    const response = await server.api('/v1/fleets', {
      method: 'POST',
      body: '{"name":',
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(400);
  });

  it('answers 409 for a taken slug and 404 for an unknown fleet', async () => {
    await createFleet('Taken');
    const again = await server.api('/v1/fleets', {
      method: 'POST',
      json: { name: 'Other', slug: 'taken', arch: 'amd64' },
    });
    expect(again.status).toBe(409);
    expect((await server.api('/v1/fleets/nope')).status).toBe(404);
  });

  it('registers a device with a provisioning key and stores only a hash of its key', async () => {
    const fleet = await createFleet('Registry');
    const { key } = await createKey(fleet.slug);
    const response = await register({ provisioningKey: key, name: 'pump-1' });
    expect(response.status).toBe(201);
    const device = (await response.json()) as {
      uuid: string;
      apiKey: string;
      fleet: { slug: string };
      mqtt: { username: string; topicPrefix: string };
    };
    expect(device.uuid).toMatch(/^[0-9a-f]{32}$/);
    expect(Buffer.from(device.apiKey, 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(device.fleet.slug).toBe('registry');
    expect(device.mqtt.username).toBe(device.uuid);
    expect(device.mqtt.topicPrefix).toBe(`ferry/v1/devices/${device.uuid}`);
    const me = await server.api('/v1/device/me', { token: device.apiKey });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { name: string }).name).toBe('pump-1');
    const listed = (await (await server.api(`/v1/fleets/registry/devices`)).json()) as Record<
      string,
      unknown
    >[];
    expect(listed).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain(device.apiKey);
    expect(listed[0]).not.toHaveProperty('keyHash');
    // What the database holds is the key's sha256, nothing the key can be read back from.
    const db = server.app.get<Kysely<unknown>>(DATABASE);
    const { rows } = await sql<{
      key_hash: string;
    }>`select key_hash from devices where uuid = ${device.uuid}`.execute(db);
    expect(rows[0]?.key_hash).toBe(createHash('sha256').update(device.apiKey).digest('hex'));
  });

  it('takes a device-made UUID and key, repeats idempotently, and answers 409 for the UUID under another key', async () => {
    const fleet = await createFleet('Own Keys');
    const { key } = await createKey(fleet.slug);
    const uuid = randomBytes(16).toString('hex');
    const apiKey = randomBytes(32).toString('base64url');
    expect((await register({ provisioningKey: key, uuid, apiKey })).status).toBe(201);
    const again = await register({ provisioningKey: key, uuid, apiKey });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { apiKey: string }).apiKey).toBe(apiKey);
    const replay = await register({
      provisioningKey: key,
      uuid,
      apiKey: randomBytes(32).toString('base64url'),
    });
    expect(replay.status).toBe(409);
    expect((await server.api('/v1/device/me', { token: apiKey })).status).toBe(200);
  });

  it('refuses short device keys, unknown and revoked provisioning keys', async () => {
    const fleet = await createFleet('Keys');
    const { key, id } = await createKey(fleet.slug);
    const short = await register({
      provisioningKey: key,
      uuid: randomBytes(16).toString('hex'),
      apiKey: 'abc',
    });
    expect(short.status).toBe(400);
    expect((await register({ provisioningKey: 'fp_wrong' })).status).toBe(401);
    expect(
      (await server.api(`/v1/fleets/${fleet.slug}/provisioning-keys/${id}`, { method: 'DELETE' })).status,
    ).toBe(204);
    const keys = (await (await server.api(`/v1/fleets/${fleet.slug}/provisioning-keys`)).json()) as {
      revokedAt: string | null;
      prefix: string;
    }[];
    expect(keys[0]?.revokedAt).not.toBeNull();
    expect(keys[0]?.prefix).toBe(key.slice(0, 9));
    expect(JSON.stringify(keys)).not.toContain(key);
    const revoked = await register({ provisioningKey: key });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { message: string }).message).toMatch(/revoked/);
  });

  it('tags, filters, searches and deprovisions devices; a deprovisioned key stops working', async () => {
    const fleet = await createFleet('Tags');
    const { key } = await createKey(fleet.slug);
    const a = (await (await register({ provisioningKey: key, name: 'alpha' })).json()) as {
      uuid: string;
      apiKey: string;
    };
    const b = (await (await register({ provisioningKey: key, name: 'beta' })).json()) as { uuid: string };
    const tagged = await server.api(`/v1/devices/${a.uuid}/tags`, {
      method: 'POST',
      json: { tags: { site: 'oslo', ring: 'canary' } },
    });
    expect(tagged.status).toBe(201);
    expect(((await tagged.json()) as { tags: Record<string, string> }).tags).toEqual({
      site: 'oslo',
      ring: 'canary',
    });
    await server.api(`/v1/devices/${a.uuid}/tags`, { method: 'POST', json: { tags: { ring: null } } });
    const bySite = (await (await server.api(`/v1/fleets/tags/devices?tag=site=oslo`)).json()) as {
      uuid: string;
      tags: object;
    }[];
    expect(bySite.map((d) => d.uuid)).toEqual([a.uuid]);
    expect(bySite[0]?.tags).toEqual({ site: 'oslo' });
    const search = (await (await server.api(`/v1/fleets/tags/devices?search=BET`)).json()) as {
      uuid: string;
    }[];
    expect(search.map((d) => d.uuid)).toEqual([b.uuid]);
    const badTag = await server.api(`/v1/devices/${a.uuid}/tags`, {
      method: 'POST',
      json: { tags: { 'bad tag!': 'x' } },
    });
    expect(badTag.status).toBe(400);
    expect((await server.api(`/v1/devices/${a.uuid}`, { method: 'DELETE' })).status).toBe(204);
    expect((await server.api('/v1/device/me', { token: a.apiKey })).status).toBe(401);
    expect((await server.api(`/v1/devices/${a.uuid}`)).status).toBe(404);
    expect((await server.api(`/v1/devices/${a.uuid}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('serves health, readiness and the OpenAPI document', async () => {
    expect((await server.api('/healthz', { token: null })).status).toBe(200);
    const ready = await server.api('/readyz', { token: null });
    expect(await ready.json()).toEqual({ status: 'ready', database: 'ok', redis: 'ok' });
    const openapi = (await (await server.api('/docs/openapi.json', { token: null })).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining(['/v1/fleets', '/v1/device/register', '/v1/fleets/{fleet}/releases']),
    );
  });

  it('echoes a request id', async () => {
    const response = await server.api('/healthz', { token: null, headers: { 'x-request-id': 'abc-123' } });
    expect(response.headers.get('x-request-id')).toBe('abc-123');
  });
});

describe('failed registrations', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('sqlite', { FERRY_REGISTRATION_FAILURES_PER_MINUTE: '5' });
  });
  afterAll(async () => server.close());

  it('are rate-limited per source address with 429 and Retry-After', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const response = await server.api('/v1/device/register', {
        method: 'POST',
        json: { provisioningKey: `guess-${i}` },
        token: null,
      });
      statuses.push(response.status);
      if (response.status === 429) expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });
});
