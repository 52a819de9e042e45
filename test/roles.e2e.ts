import { createHash } from 'node:crypto';
import {
  CreatedApiKey,
  OPERATOR_ROLES,
  OperatorRole,
  Release,
  RouteNeed,
  roleSatisfies,
} from '@ferry/protocol';
import { Clock } from '../apps/server/src/clock/clock';
import { TestFleet, createFleet, pushRelease, registerDevice } from './support/mqtt-devices';
import { TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

/** One operation of the OpenAPI document, with what the server declared about who may call it. */
interface Operation {
  method: string;
  path: string;
  audience?: string;
  access?: { need: RouteNeed; scope: unknown };
}

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete'] as const;

/** Every route the server has, from its own OpenAPI document: routes added later are walked too. */
async function operations(server: TestServer): Promise<Operation[]> {
  const doc = (await (await server.api('/docs/openapi.json', { token: null })).json()) as {
    paths: Record<string, Record<string, Record<string, unknown>>>;
  };
  const found: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths))
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      found.push({
        method: method.toUpperCase(),
        path,
        audience: op['x-ferry-audience'] as string | undefined,
        access: op['x-ferry-access'] as Operation['access'],
      });
    }
  return found;
}

const operatorCallable = (op: Operation): boolean =>
  op.audience === undefined || op.audience === 'operator-or-device' || op.path === '/v1/events';

/** What a key may expect from a route: refused with 403, or let through (any other status but 401). */
function allowed(role: OperatorRole, scoped: boolean, op: Operation): boolean {
  if (!op.access || !roleSatisfies(role, op.access.need)) return false;
  return !(scoped && (op.access.scope === 'all-fleets' || op.access.scope === 'new-fleet'));
}

describe.each(DATABASE_KINDS)('operator API keys: roles and fleet scope on every route (%s)', (kind) => {
  let server: TestServer;
  let home: TestFleet;
  let other: TestFleet;
  let device: string;
  let release: Release;
  let rollout: string;
  const keys = new Map<string, CreatedApiKey>();

  const createKey = async (body: object): Promise<CreatedApiKey> => {
    const response = await server.api('/v1/api-keys', { method: 'POST', json: body });
    expect(response.status).toBe(201);
    return (await response.json()) as CreatedApiKey;
  };

  beforeAll(async () => {
    server = await startTestServer(kind);
    home = await createFleet(server, 'Home');
    other = await createFleet(server, 'Other');
    device = (await registerDevice(server, home)).uuid;
    await registerDevice(server, other);
    release = await pushRelease(server, home, 'v1');
    const started = await server.api(`/v1/fleets/${home.slug}/rollouts`, {
      method: 'POST',
      json: { releaseId: release.id },
    });
    expect(started.status).toBe(201);
    rollout = ((await started.json()) as { id: string }).id;
    for (const role of OPERATOR_ROLES) keys.set(role, await createKey({ name: `all-${role}`, role }));
    for (const role of ['deployer', 'viewer', 'device-provisioner'] as const)
      keys.set(`other-${role}`, await createKey({ name: `other-${role}`, role, fleets: [other.slug] }));
    keys.set('home-viewer', await createKey({ name: 'home-viewer', role: 'viewer', fleets: [home.id] }));
  });
  afterAll(async () => server.close());

  /** Real ids of the home fleet for each route parameter, or ids of nothing for `bogus`. */
  function fill(op: Operation, bogus: boolean): string {
    const layer = release.manifest.services[0]?.layers[0]?.diffId ?? '';
    return op.path.replace(/\{(\w+)\}/g, (_all, name: string) => {
      if (bogus) return name === 'digest' ? `sha256:${'0'.repeat(64)}` : 'no-such-thing';
      if (name === 'fleet') return home.slug;
      if (name === 'uuid') return device;
      if (name === 'id') return op.path.startsWith('/v1/rollouts') ? rollout : release.id;
      if (name === 'digest') return layer;
      if (name === 'key') return '00000000-0000-4000-8000-000000000000';
      return 'NO_SUCH_NAME';
    });
  }

  async function call(
    op: Operation,
    token: string,
    bogus: boolean,
  ): Promise<{ status: number; body: string }> {
    const path = fill(op, bogus);
    const response = await server.api(path, {
      method: op.method,
      token,
      // A body that every route refuses as invalid, so letting a call through changes nothing.
      ...(['POST', 'PUT', 'PATCH'].includes(op.method) ? { json: { __not_a_field: true } } : {}),
    });
    // Streams (GET /v1/events) answer their headers at once; the body is not needed.
    const body = path === '/v1/events' ? '' : await response.text();
    if (path === '/v1/events') await response.body?.cancel();
    return { status: response.status, body };
  }

  it('grants each need to the roles docs/security.md names, and no others', () => {
    // Spelled out here, not read from ROLES_FOR_NEED: the tests below judge the guard by that table, so a
    // role added to it by mistake would pass them.
    const granted = (need: RouteNeed) => OPERATOR_ROLES.filter((role) => roleSatisfies(role, need));
    expect(granted('signed-in')).toEqual(['admin', 'deployer', 'viewer', 'device-provisioner']);
    expect(granted('viewer')).toEqual(['admin', 'deployer', 'viewer']);
    expect(granted('deployer')).toEqual(['admin', 'deployer']);
    expect(granted('provisioner')).toEqual(['admin', 'device-provisioner']);
    expect(granted('admin')).toEqual(['admin']);
  });

  it('finds a declared role on every operator route of the OpenAPI document', async () => {
    const ops = await operations(server);
    expect(ops.length).toBeGreaterThan(40);
    const undeclared = ops
      .filter((op) => operatorCallable(op) && !op.access)
      .map((op) => `${op.method} ${op.path}`);
    expect(undeclared).toEqual([]);
    // The viewer role is read-only: no route that changes anything may be open to it.
    const writableByViewer = ops.filter(
      (op) =>
        op.access && op.method !== 'GET' && op.method !== 'HEAD' && roleSatisfies('viewer', op.access.need),
    );
    expect(writableByViewer.map((op) => `${op.method} ${op.path}`)).toEqual([]);
    const need = (method: string, path: string): RouteNeed | undefined =>
      ops.find((op) => op.method === method && op.path === path)?.access?.need;
    expect(need('POST', '/v1/api-keys')).toBe('admin');
    expect(need('GET', '/v1/api-keys')).toBe('admin');
    expect(need('DELETE', '/v1/api-keys/{key}')).toBe('admin');
    expect(need('DELETE', '/v1/auth/bootstrap-token')).toBe('admin');
    expect(need('POST', '/v1/fleets')).toBe('admin');
    expect(need('DELETE', '/v1/devices/{uuid}')).toBe('admin');
    expect(need('POST', '/v1/fleets/{fleet}/releases')).toBe('deployer');
    expect(need('POST', '/v1/fleets/{fleet}/rollouts')).toBe('deployer');
    expect(need('POST', '/v1/rollouts/{id}/abort')).toBe('deployer');
    expect(need('POST', '/v1/fleets/{fleet}/variables')).toBe('deployer');
    expect(need('POST', '/v1/fleets/{fleet}/provisioning-keys')).toBe('provisioner');
    expect(need('PUT', '/v1/fleets/{fleet}/bind-mounts')).toBe('admin');
  });

  it('lists keys without their secrets, refuses bad keys with the reason, and revokes at once', async () => {
    const listed = (await (await server.api('/v1/api-keys')).json()) as Record<string, unknown>[];
    const text = JSON.stringify(listed);
    for (const key of keys.values()) {
      expect(text).not.toContain(key.key);
      expect(text).not.toContain(createHash('sha256').update(key.key).digest('hex'));
    }
    expect(listed.find((k) => k.name === 'other-viewer')).toMatchObject({
      role: 'viewer',
      fleetIds: [other.id],
      createdBy: 'bootstrap',
      revokedAt: null,
    });
    for (const [body, reason] of [
      [{ name: 'x', role: 'root' }, /role/],
      [{ name: 'Bad Name', role: 'viewer' }, /name/],
      [{ name: 'a1', role: 'admin', fleets: [home.slug] }, /admin key acts on every fleet/],
      [{ name: 'a2', role: 'viewer', fleets: ['nope'] }, /no fleet nope/],
      [{ name: 'a3', role: 'viewer', expiresAt: '2001-01-01T00:00:00Z' }, /future/],
      [{ name: 'a4', role: 'viewer', expiresAt: 'tomorrow' }, /expiresAt/],
      [{ name: 'a5', role: 'viewer', keyHash: 'x' }, /Unrecognized|keyHash/],
    ] as const) {
      const response = await server.api('/v1/api-keys', { method: 'POST', json: body });
      expect([response.status, ((await response.json()) as { message: string }).message]).toEqual([
        400,
        expect.stringMatching(reason),
      ]);
    }
    expect(
      (await server.api('/v1/api-keys', { method: 'POST', json: { name: 'all-viewer', role: 'viewer' } }))
        .status,
    ).toBe(409);

    const short = await createKey({ name: 'short', role: 'viewer' });
    expect((await server.api('/v1/auth/whoami', { token: short.key })).status).toBe(200);
    const revoked = await server.api('/v1/api-keys/short', { method: 'DELETE' });
    expect(((await revoked.json()) as { revokedAt: string | null }).revokedAt).not.toBeNull();
    expect((await server.api('/v1/fleets', { token: short.key })).status).toBe(401);
    expect((await server.api('/v1/api-keys/nope', { method: 'DELETE' })).status).toBe(404);
  });

  it('stops taking a key at its expiry (the server clock moved on, not waited for)', async () => {
    const expiresAt = new Date(Date.now() + 3600_000);
    const soon = await createKey({ name: 'soon', role: 'viewer', expiresAt: expiresAt.toISOString() });
    expect((await server.api('/v1/fleets', { token: soon.key })).status).toBe(200);
    const clock = server.app.get(Clock);
    const later = jest.spyOn(clock, 'nowMs').mockReturnValue(expiresAt.getTime() + 1);
    try {
      expect((await server.api('/v1/fleets', { token: soon.key })).status).toBe(401);
    } finally {
      later.mockRestore();
    }
    expect((await server.api('/v1/fleets', { token: soon.key })).status).toBe(200);
  });

  it('keeps the bootstrap token until an admin key exists, then turns it off for good', async () => {
    const whoami = (await (await server.api('/v1/auth/whoami')).json()) as { name: string; role: string };
    expect(whoami).toEqual({ name: 'bootstrap', role: 'admin', keyId: null, fleetIds: null });
    // Revoke every admin key: turning the bootstrap token off must then be refused.
    const admin = keys.get('admin');
    if (!admin) throw new Error('admin');
    await server.api(`/v1/api-keys/${admin.id}`, { method: 'DELETE' });
    const refused = await server.api('/v1/auth/bootstrap-token', { method: 'DELETE' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { message: string }).message).toMatch(/create an admin API key first/);
    const fresh = await createKey({ name: 'second-admin', role: 'admin' });
    expect((await server.api('/v1/auth/bootstrap-token', { method: 'DELETE' })).status).toBe(204);
    expect((await server.api('/v1/fleets')).status).toBe(401);
    const state = await server.api('/v1/auth/bootstrap-token', { token: fresh.key });
    expect(await state.json()).toEqual({ enabled: false });
    expect((await server.api('/v1/fleets', { token: fresh.key })).status).toBe(200);
    keys.set('admin', fresh);
  });
  it('answers 403 to every role a route does not allow, and lets every allowed role through', async () => {
    const wrong: string[] = [];
    const ops = (await operations(server)).filter(operatorCallable);
    // Destructive routes last, so a call let through cannot take away what later calls use (the
    // bootstrap token is already off: DELETE /v1/auth/bootstrap-token changes nothing here).
    ops.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    for (const op of ops)
      for (const role of OPERATOR_ROLES) {
        const key = keys.get(role);
        if (!key) throw new Error(role);
        const expectAllowed = allowed(role, false, op);
        // Let through: ids of nothing, so a DELETE or an abort changes nothing that matters.
        const { status, body } = await call(op, key.key, expectAllowed && op.method !== 'GET');
        const ok = expectAllowed ? status !== 403 && status !== 401 : status === 403;
        if (!ok) wrong.push(`${role} ${op.method} ${op.path}: ${status} ${body.slice(0, 160)}`);
      }
    expect(wrong).toEqual([]);
  });

  it('holds keys limited to one fleet to that fleet on every route that names one', async () => {
    const wrong: string[] = [];
    const ops = (await operations(server)).filter(operatorCallable);
    for (const op of ops) {
      const scope = op.access?.scope;
      const namesFleet = typeof scope === 'object' && scope !== null;
      for (const role of ['deployer', 'viewer', 'device-provisioner'] as const) {
        const key = keys.get(`other-${role}`);
        if (!key) throw new Error(role);
        const expectAllowed = allowed(role, true, op) && !namesFleet;
        if (expectAllowed) continue; // listings: checked below by what they show
        const { status, body } = await call(op, key.key, false);
        if (status !== 403)
          wrong.push(`other-${role} ${op.method} ${op.path}: ${status} ${body.slice(0, 160)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('shows a fleet-limited key only its fleets in listings, events and blobs', async () => {
    const token = keys.get('other-viewer')?.key;
    const fleets = (await (await server.api('/v1/fleets', { token })).json()) as { slug: string }[];
    expect(fleets.map((f) => f.slug)).toEqual([other.slug]);
    const devices = (await (await server.api('/v1/devices', { token })).json()) as { fleetId: string }[];
    expect(devices.length).toBe(1);
    expect(devices.every((d) => d.fleetId === other.id)).toBe(true);
    const layer = release.manifest.services[0]?.layers[0]?.diffId ?? '';
    expect((await server.api(`/v1/blobs/${layer}`, { token })).status).toBe(404);
    const insider = keys.get('home-viewer')?.key;
    expect((await server.api(`/v1/blobs/${layer}`, { token: insider })).status).toBe(200);
    expect((await server.api(`/v1/releases/${release.id}`, { token: insider })).status).toBe(200);
    expect((await server.api(`/v1/events?fleet=${home.slug}`, { token })).status).toBe(403);
  });
});
