import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OnlineKey, RegisteredDevice, Release, verifySignedTarget } from '@ferry/protocol';
import { Kysely } from 'kysely';
import { DATABASE } from '../apps/server/src/database/database.module';
import { Database } from '../apps/server/src/database/database.types';
import { isUniqueViolation } from '../apps/server/src/database/unique-violation';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { deleteQueueKeys, deleteRedisKeys, testQueuePrefix, testRedisPrefix } from './support/redis-keys';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

/**
 * Two server processes' worth of Nest applications on one database and one Redis namespace, as
 * replicas behind a load balancer run: the decision "one active rollout per fleet" holds across them
 * because the database enforces it, not a process.
 */
describe.each(DATABASE_KINDS)('server replicas on %s', (kind) => {
  let a: TestServer;
  let b: TestServer;
  let work: string;
  const redisPrefix = testRedisPrefix();
  const queuePrefix = testQueuePrefix('replicas');

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-replicas-'));
    const shared = { REDIS_PREFIX: redisPrefix, FERRY_QUEUE_PREFIX: queuePrefix };
    a = await startTestServer(kind, shared);
    b = await startTestServer('sqlite', {
      ...shared,
      ...(a.config.database.kind === 'postgres'
        ? { DATABASE_URL: a.config.database.url }
        : { DATA_DIR: a.config.dataDir }),
    });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await deleteRedisKeys(a.config.redisUrl, redisPrefix);
    await deleteQueueKeys(a.config.redisUrl, queuePrefix);
    rmSync(work, { recursive: true, force: true });
  });

  it('starts exactly one of two rollouts created for one fleet at the same instant through two replicas', async () => {
    await a.api('/v1/fleets', { method: 'POST', json: { name: 'Replicas', arch: 'amd64' } });
    const key = await a.api('/v1/fleets/replicas/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    for (let i = 0; i < 3; i++)
      expect(
        (await b.api('/v1/device/register', { method: 'POST', json: { provisioningKey }, token: null }))
          .status,
      ).toBe(201);
    const layer = gnuTarLayer(join(work, 'v1'), { 'app/VERSION': '1\n' });
    const pushed = await a.api('/v1/fleets/replicas/releases', {
      method: 'POST',
      body: await dockerArchive([layer], { repoTag: 'app:1' }),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(pushed.status).toBe(201);
    const release = (await pushed.json()) as Release;
    const strategy = { batches: ['100%'], bakeSeconds: 60, deviceTimeoutSeconds: 600 };
    for (let round = 0; round < 3; round++) {
      const responses = await Promise.all(
        [a, b].map((server) =>
          server.api('/v1/fleets/replicas/rollouts', {
            method: 'POST',
            json: { releaseId: release.id, strategy },
          }),
        ),
      );
      const statuses = responses.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 409]);
      const created = (await responses.find((r) => r.status === 201)!.json()) as { id: string };
      const conflict = (await responses.find((r) => r.status === 409)!.json()) as { message: string };
      expect(conflict.message).toMatch(/active rollout|of this fleet is running/);
      const db = a.app.get<Kysely<Database>>(DATABASE);
      const active = await db
        .selectFrom('rollouts')
        .select('id')
        .where('state', 'in', ['running', 'paused'])
        .execute();
      expect(active.map((r) => r.id)).toEqual([created.id]);
      expect((await b.api(`/v1/rollouts/${created.id}/abort`, { method: 'POST' })).status).toBe(200);
    }
  });

  it('refuses, in the database itself, a second active rollout for a fleet whoever writes it', async () => {
    const db = a.app.get<Kysely<Database>>(DATABASE);
    const [template] = await db.selectFrom('rollouts').selectAll().limit(1).execute();
    if (!template) throw new Error('the previous test created no rollout');
    const copy = (id: string, state: string) => ({ ...template, id, state, finished_at: null });
    await db.insertInto('rollouts').values(copy('00000000-0000-4000-8000-000000000001', 'running')).execute();
    const second = db
      .insertInto('rollouts')
      .values(copy('00000000-0000-4000-8000-000000000002', 'paused'))
      .execute();
    const error = await second.then(
      () => null,
      (e: unknown) => e,
    );
    expect(isUniqueViolation(error)).toBe(true);
    // Finished rollouts are not limited.
    await db
      .insertInto('rollouts')
      .values(copy('00000000-0000-4000-8000-000000000003', 'completed'))
      .execute();
    await db.insertInto('rollouts').values(copy('00000000-0000-4000-8000-000000000004', 'aborted')).execute();
    await db.deleteFrom('rollouts').where('id', 'like', '00000000-0000-4000-8000-%').execute();
  });

  it('signs device targets with one online key and one target version that grows across replicas', async () => {
    await a.api('/v1/fleets', { method: 'POST', json: { name: 'Signed targets', arch: 'amd64' } });
    const key = await b.api('/v1/fleets/signed-targets/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    const registered = await b.api('/v1/device/register', {
      method: 'POST',
      json: { provisioningKey },
      token: null,
    });
    expect(registered.status).toBe(201);
    const device = (await registered.json()) as RegisteredDevice;
    // One key for both: generated once, whichever replica asked first.
    const keysOf = async (s: TestServer) => (await (await s.api('/v1/target-keys')).json()) as OnlineKey[];
    const [onA, onB] = await Promise.all([keysOf(a), keysOf(b)]);
    expect(onA).toEqual(onB);
    expect(onA.map((k) => [k.role, k.publicKey])).toEqual([['current', device.targetKey]]);
    const layer = gnuTarLayer(join(work, 'signed'), { 'app/VERSION': '1\n' });
    const pushed = await a.api('/v1/fleets/signed-targets/releases', {
      method: 'POST',
      body: await dockerArchive([layer], { repoTag: 'app:1' }),
      headers: { 'content-type': 'application/x-tar' },
    });
    const release = (await pushed.json()) as Release;
    const targetFrom = async (s: TestServer) =>
      verifySignedTarget(
        await (await s.api('/v1/device/target', { token: device.apiKey })).json(),
        device.targetKey,
        device.uuid,
        Date.now(),
      );
    // Targets set through one replica, read through the other: the version only grows.
    for (let i = 1; i <= 4; i++) {
      const [writer, reader] = i % 2 === 1 ? [a, b] : [b, a];
      const set = await writer.api(`/v1/devices/${device.uuid}/target`, {
        method: 'PUT',
        json: { releaseId: release.id },
      });
      expect(set.status).toBe(200);
      expect(await targetFrom(reader)).toMatchObject({ targetVersion: i, release: { id: release.id } });
    }
    // A rotation on one replica reaches the other within its key cache (5 s), co-signed by the old key.
    const rotated = (await (await a.api('/v1/target-keys/rotate', { method: 'POST' })).json()) as OnlineKey;
    const deadline = Date.now() + 30_000;
    let seen = await targetFrom(b);
    while (seen.onlineKey !== rotated.publicKey && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      seen = await targetFrom(b);
    }
    expect(seen.onlineKey).toBe(rotated.publicKey);
    expect(seen.targetVersion).toBe(4);
  }, 120_000);
});
