import { sql, Kysely } from 'kysely';
import type { AuditEntry, CreatedApiKey } from '@ferry/protocol';
import { DATABASE } from '../apps/server/src/database/database.token';
import { buildCli, ferry } from './support/cli';
import { TestFleet, createFleet, eventually, pushRelease, registerDevice } from './support/mqtt-devices';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

describe.each(DATABASE_KINDS)('the audit log on %s', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let deployer: CreatedApiKey;
  let viewer: CreatedApiKey;
  const secretValue = 'hunter2-do-not-log-me';

  const createKey = async (body: object): Promise<CreatedApiKey> => {
    const response = await server.api('/v1/api-keys', { method: 'POST', json: body });
    expect(response.status).toBe(201);
    return (await response.json()) as CreatedApiKey;
  };
  const audit = async (query: string, token?: string): Promise<AuditEntry[]> => {
    const response = await server.api(`/v1/audit${query}`, token ? { token } : {});
    expect(response.status).toBe(200);
    return (await response.json()) as AuditEntry[];
  };

  beforeAll(async () => {
    [server] = await Promise.all([startTestServer(kind), buildCli()]);
    fleet = await createFleet(server, 'Audited');
    await registerDevice(server, fleet);
    deployer = await createKey({ name: 'ci-deployer', role: 'deployer', fleets: [fleet.slug] });
    viewer = await createKey({ name: 'watcher', role: 'viewer' });
  }, 120_000);
  afterAll(async () => server.close());

  it('records a push → rollout → abort cycle: who, what, when, from where, and the outcome', async () => {
    const since = new Date().toISOString();
    const deployerApi: Pick<TestServer, 'api'> = {
      api: (path, init = {}) => server.api(path, { ...init, token: deployer.key }),
    };
    expect((await server.api('/v1/auth/whoami', { token: deployer.key })).status).toBe(200);
    const release = await pushRelease(deployerApi, fleet, 'audited v1');
    const started = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
      method: 'POST',
      json: { releaseId: release.id },
      token: deployer.key,
    });
    expect(started.status).toBe(201);
    const rollout = ((await started.json()) as { id: string }).id;
    // A viewer may not abort it: refused, and recorded as refused.
    expect(
      (await server.api(`/v1/rollouts/${rollout}/abort`, { method: 'POST', token: viewer.key })).status,
    ).toBe(403);
    expect(
      (await server.api(`/v1/rollouts/${rollout}/abort`, { method: 'POST', token: deployer.key })).status,
    ).toBe(200);
    // A stolen-token guess: recorded as a refusal by nobody known.
    expect(
      (await server.api(`/v1/rollouts/${rollout}/abort`, { method: 'POST', token: 'fk_guess' })).status,
    ).toBe(401);
    // A secret variable and a new key: their values must never reach the log.
    const setVariable = await server.api(`/v1/fleets/${fleet.slug}/variables`, {
      method: 'POST',
      json: { name: 'DB_PASSWORD', value: secretValue, secret: true },
      token: deployer.key,
    });
    expect(setVariable.status).toBeLessThan(300);
    const made = await createKey({ name: 'made-later', role: 'viewer' });

    const entries = await audit(`?since=${encodeURIComponent(since)}`);
    const cycle = entries
      .filter((e) => e.fleetId === fleet.id || e.action === 'auth.whoami' || e.actor === 'unknown')
      .map((e) => [e.actor, e.action, e.outcome, e.status, e.targets]);
    expect(cycle).toEqual([
      ['ci-deployer', 'auth.whoami', 'ok', 200, {}],
      ['ci-deployer', 'releases.push', 'ok', 201, { fleet: fleet.slug, created: release.id }],
      ['ci-deployer', 'rollouts.create', 'ok', 201, { fleet: fleet.slug, created: rollout }],
      ['watcher', 'rollouts.abort', 'denied', 403, { id: rollout }],
      ['ci-deployer', 'rollouts.abort', 'ok', 200, { id: rollout, created: rollout }],
      ['unknown', 'rollouts.abort', 'denied', 401, { id: rollout }],
      ['ci-deployer', 'variables.setFleet', 'ok', 201, { fleet: fleet.slug }],
    ]);
    const refused = entries.find((e) => e.actor === 'watcher');
    expect(refused?.error).toMatch(/viewer key watcher may not POST/);
    for (const entry of entries) {
      expect(entry.source).toMatch(/127\.0\.0\.1/);
      expect(Date.parse(entry.at)).toBeGreaterThanOrEqual(Date.parse(since));
    }
    const pushEntry = entries.find((e) => e.action === 'releases.push');
    expect(pushEntry).toMatchObject({
      method: 'POST',
      path: `/v1/fleets/${fleet.slug}/releases`,
      fleetId: fleet.id,
    });
    const keyEntry = entries.find((e) => e.action === 'apiKeys.create' && e.targets.created === made.id);
    expect(keyEntry).toMatchObject({ actor: 'bootstrap', outcome: 'ok' });
    const everything = JSON.stringify(await audit(''));
    for (const secret of [secretValue, made.key, deployer.key, viewer.key, 'fk_guess'])
      expect(everything).not.toContain(secret);
  });

  it('answers ?fleet= with that fleet only, and a fleet-limited key with its fleets only', async () => {
    const other = await createFleet(server, 'Elsewhere');
    const mine = await audit(`?fleet=${fleet.slug}`);
    expect(mine.length).toBeGreaterThan(3);
    expect(mine.every((e) => e.fleetId === fleet.id)).toBe(true);
    const created = (await audit(`?fleet=${other.slug}`)).map((e) => e.action);
    expect(created).toEqual(['fleets.create', 'fleets.createKey']);
    const scoped = await audit('', deployer.key);
    expect(scoped.every((e) => e.fleetId === fleet.id)).toBe(true);
    expect((await server.api(`/v1/audit?fleet=${other.slug}`, { token: deployer.key })).status).toBe(403);
    for (const [query, reason] of [
      ['?since=yesterday', /since/],
      ['?limit=0', /limit/],
      ['?fleet=nope', /no fleet nope/],
      ['?drop=table', /Unrecognized|drop/],
    ] as const) {
      const response = await server.api(`/v1/audit${query}`);
      expect([response.status, ((await response.json()) as { message: string }).message]).toEqual([
        query === '?fleet=nope' ? 404 : 400,
        expect.stringMatching(reason),
      ]);
    }
  });

  it('cannot be rewritten: the database refuses UPDATE and DELETE of entries', async () => {
    const db = server.app.get<Kysely<unknown>>(DATABASE);
    // Triggers fire per row: judge them on a table that holds the entries the tests above made.
    await eventually(
      async () => {
        const { rows } = await sql<{ n: number | string }>`select count(*) as n from audit_events`.execute(
          db,
        );
        return Number(rows[0]?.n) > 0 ? true : undefined;
      },
      10_000,
      'audit entries in the table',
    );
    // Judged by message, not with toThrow: a suite that runs after another in the same jest worker gets
    // better-sqlite3's errors from the first suite's realm, which toThrow does not take for errors.
    const refusal = { message: expect.stringMatching(/append-only/) };
    await expect(sql`update audit_events set actor = 'someone-else'`.execute(db)).rejects.toMatchObject(
      refusal,
    );
    await expect(sql`delete from audit_events`.execute(db)).rejects.toMatchObject(refusal);
    const { rows } = await sql<{ n: number | string }>`
      select count(*) as n from audit_events where actor = 'someone-else'`.execute(db);
    expect(Number(rows[0]?.n)).toBe(0);
    expect((await audit('')).some((e) => e.actor === 'ci-deployer')).toBe(true);
  });

  it('is printed by ferry audit, and ferry keys creates, lists and revokes keys', async () => {
    const env = { FERRY_URL: server.url, FERRY_TOKEN: 'test-admin-token-0123456789abcdef' };
    const created = await ferry(
      ['keys', 'create', 'cli-made', '--role', 'viewer', '--fleet', fleet.slug, '--expires', '30d', '--json'],
      { env },
    );
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as CreatedApiKey;
    expect(key).toMatchObject({ name: 'cli-made', role: 'viewer', fleetIds: [fleet.id] });
    expect(Date.parse(key.expiresAt ?? '') - Date.now()).toBeGreaterThan(29 * 86400_000);
    const listed = await ferry(['keys'], { env });
    expect(listed.stdout).toMatch(/cli-made\s+viewer\s+\S+\s+fk_\S+…\s+until/);
    expect(listed.stdout).not.toContain(key.key);
    const asViewer = await ferry(['audit', '--fleet', fleet.slug], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: key.key },
    });
    expect(asViewer.code).toBe(0);
    expect(asViewer.stdout).toMatch(
      /ci-deployer\s+releases\.push\s+fleet=audited created=\S+\s+\S+\s+ok 201/,
    );
    expect(asViewer.stdout).toMatch(
      /watcher\s+rollouts\.abort\s+id=\S+\s+\S+\s+denied 403: viewer key watcher/,
    );
    const push = await ferry(['keys', 'create', 'x', '--role', 'admin'], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: key.key },
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/403/);
    expect((await ferry(['keys', 'revoke', 'cli-made'], { env })).stdout).toBe('revoked API key cli-made\n');
    expect((await ferry(['audit'], { env: { FERRY_URL: server.url, FERRY_TOKEN: key.key } })).code).not.toBe(
      0,
    );
  });
});
