import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta } from '@ferry/delta';
import { DeltaRecord, DeviceTarget, Release } from '@ferry/protocol';
import { Kysely } from 'kysely';
import { DATABASE } from '../apps/server/src/database/database.module';
import { Database } from '../apps/server/src/database/database.types';
import { noise } from './support/agent-images';
import { dockerArchive, gnuTarLayer, sha256 } from './support/hostile-archives';
import { descendantsOf, isRunning } from './support/processes';
import { TEST_REDIS_URL, deleteQueueKeys, testQueuePrefix } from './support/redis-keys';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';
import { WorkerProcess, startWorker } from './support/worker-process';

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(DATABASE_KINDS)('delta workers on %s', (kind) => {
  let server: TestServer;
  let worker: WorkerProcess;
  let work: string;
  let env: Record<string, string>;
  const prefix = testQueuePrefix('deltas');

  const release = async (files: Record<string, string | Buffer>, version: number): Promise<Release> => {
    const dir = join(work, `v${version}`);
    const layer = gnuTarLayer(
      dir,
      Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.toString('latin1')])),
    );
    const base = gnuTarLayer(join(work, 'base'), { 'etc/os-release': 'ferry test os\n' });
    const archive = await dockerArchive([base, layer], { repoTag: 'app:latest' });
    const response = await server.api(`/v1/fleets/deltas/releases?version=${version}`, {
      method: 'POST',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as Release;
  };
  const deltasOf = async (id: string): Promise<DeltaRecord[]> =>
    (await (await server.api(`/v1/releases/${id}/deltas`)).json()) as DeltaRecord[];
  const settled = (id: string, count: number) =>
    until(`deltas of ${id}`, async () => {
      const list = await deltasOf(id);
      return list.length >= count &&
        list.every((d) => d.state === 'ready' || d.state === 'full' || d.state === 'failed')
        ? list
        : undefined;
    });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-deltas-'));
    // The server sweeps staging only at its start here, so what the test sees swept is the worker's doing.
    server = await startTestServer(kind, {
      FERRY_QUEUE_PREFIX: prefix,
      FERRY_STAGING_STALE_SECONDS: '86400',
    });
    env = { DATA_DIR: server.dataDir, FERRY_QUEUE_PREFIX: prefix, WORKER_LOCK_MS: '2000', LOG_LEVEL: 'warn' };
    worker = await startWorker(env);
    await server.api('/v1/fleets', { method: 'POST', json: { name: 'Deltas', arch: 'amd64' } });
  });
  afterAll(async () => {
    await worker?.kill();
    await server?.close();
    await deleteQueueKeys(TEST_REDIS_URL, prefix);
    rmSync(work, { recursive: true, force: true });
  });

  let v1: Release;
  let v2: Release;

  it('builds, on demand, a delta that rebuilds the new layer byte for byte and is far smaller than its gzip', async () => {
    const binary = noise(7, 600_000);
    v1 = await release({ 'app/bin': binary, 'app/VERSION': '1\n' }, 1);
    const changed = Buffer.from(binary);
    changed.write('patched', 1000);
    changed.write('patched again', 400_000);
    v2 = await release({ 'app/bin': changed, 'app/VERSION': '2\n' }, 2);
    const response = await server.api(`/v1/releases/${v2.id}/deltas`, {
      method: 'POST',
      json: { from: v1.id },
    });
    expect(response.status).toBe(201);
    const requested = (await response.json()) as DeltaRecord[];
    expect(requested).toHaveLength(1);
    const [delta] = await settled(v2.id, 1);
    expect(delta?.state).toBe('ready');
    expect(delta?.size).toBeLessThan((delta?.targetGzipSize ?? 0) / 20);
    expect(delta?.savings).toBeGreaterThan(0.95);

    const blob = await server.api(`/v1/blobs/${delta?.digest}`);
    const deltaPath = join(work, 'd1');
    writeFileSync(deltaPath, Buffer.from(await blob.arrayBuffer()));
    const basePaths = (delta?.bases ?? []).map((digest, i) => {
      const path = join(work, `base-${i}`);
      writeFileSync(
        path,
        readFileSync(join(server.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))),
      );
      return path;
    });
    const out = join(work, 'rebuilt.tar');
    await applyDelta({ bases: basePaths, delta: deltaPath, out });
    expect(sha256(readFileSync(out))).toBe(delta?.target);
    expect(delta?.target).toBe(v2.services[0]?.layers[1]?.diffId);
  });

  it('offers a device the delta only when it holds every base, the gzip layer otherwise', async () => {
    const db = server.app.get<Kysely<Database>>(DATABASE);
    const key = await server.api('/v1/fleets/deltas/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    const device = (await (
      await server.api('/v1/device/register', { method: 'POST', json: { provisioningKey }, token: null })
    ).json()) as { uuid: string; apiKey: string };
    await db
      .updateTable('devices')
      .set({ target_release_id: v2.id })
      .where('uuid', '=', device.uuid)
      .execute();
    const v1Layers = v1.services[0]?.layers.map((l) => l.diffId) ?? [];
    const target = async (have: string[]): Promise<DeviceTarget> =>
      (await (
        await server.api(`/v1/device/target?have=${have.join(',')}`, { token: device.apiKey })
      ).json()) as DeviceTarget;

    const holding = await target(v1Layers);
    expect(holding.release?.id).toBe(v2.id);
    expect(holding.layers.map((l) => l.download?.kind ?? 'present')).toEqual(['present', 'delta']);
    const delta = holding.layers[1]?.download;
    expect(delta?.kind === 'delta' && delta.bases).toEqual(v1Layers);
    expect(holding.downloadBytes).toBeLessThan(holding.fullBytes / 20);

    const lacking = await target([v1Layers[0] as string]);
    expect(lacking.layers.map((l) => l.download?.kind ?? 'present')).toEqual(['present', 'full']);
    expect(lacking.downloadBytes).toBe(lacking.fullBytes);

    const posted = await server.api('/v1/device/target', {
      method: 'POST',
      json: { have: v1Layers },
      token: device.apiKey,
    });
    expect(((await posted.json()) as DeviceTarget).layers[1]?.download?.kind).toBe('delta');
    expect((await server.api('/v1/device/target?have=nonsense', { token: device.apiKey })).status).toBe(400);
    expect((await server.api('/v1/device/target')).status).toBe(401);
    await db.deleteFrom('devices').where('uuid', '=', device.uuid).execute();
  });

  it('treats a repeated request as a no-op: same keys, no second build', async () => {
    const before = await deltasOf(v2.id);
    const again = (await (
      await server.api(`/v1/releases/${v2.id}/deltas`, { method: 'POST', json: { from: v1.id } })
    ).json()) as DeltaRecord[];
    expect(again.map((d) => d.key)).toEqual(before.map((d) => d.key));
    const after = await deltasOf(v2.id);
    expect(after).toEqual(before);
  });

  it('plans deltas eagerly from the releases devices run when a release is pushed', async () => {
    const db = server.app.get<Kysely<Database>>(DATABASE);
    const key = await server.api('/v1/fleets/deltas/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    const device = (await (
      await server.api('/v1/device/register', { method: 'POST', json: { provisioningKey }, token: null })
    ).json()) as { uuid: string };
    // As a device's state report would: it runs v1.
    await db.updateTable('devices').set({ release_id: v1.id }).where('uuid', '=', device.uuid).execute();
    const v3 = await release({ 'app/bin': noise(7, 600_000), 'app/VERSION': '3\n', 'app/new.txt': 'new' }, 3);
    const [delta] = await settled(v3.id, 1);
    expect(delta?.bases).toEqual(v1.services[0]?.layers.map((l) => l.diffId));
    expect(delta?.state).toBe('ready');
    await db.deleteFrom('devices').where('uuid', '=', device.uuid).execute();
  });

  it('records "send the full layer" when the delta would not be smaller than the gzip', async () => {
    // A tiny layer: the delta's fixed header outweighs a gzip of a few hundred bytes.
    const v4 = await release({ 'tiny.txt': 'x' }, 4);
    await server.api(`/v1/releases/${v4.id}/deltas`, { method: 'POST', json: { from: v1.id } });
    const [delta] = await settled(v4.id, 1);
    expect(delta?.state).toBe('full');
    expect(delta?.digest).toBeNull();
  });

  it('fails a job with corrupt inputs once, without retries, with the reason', async () => {
    const v5 = await release({ 'app/bin': noise(5, 100_000) }, 5);
    const target = v5.services[0]?.layers[1]?.diffId ?? '';
    const path = join(server.dataDir, 'blobs', 'sha256', target.slice(7, 9), target.slice(7));
    const original = readFileSync(path);
    writeFileSync(
      path,
      Buffer.concat([original.subarray(0, 100), Buffer.from('corrupt'), original.subarray(107)]),
    );
    try {
      await server.api(`/v1/releases/${v5.id}/deltas`, { method: 'POST', json: { from: v1.id } });
      const [delta] = await settled(v5.id, 1);
      expect(delta?.state).toBe('failed');
      expect(delta?.error).toMatch(/corrupt/);
    } finally {
      writeFileSync(path, original);
    }
  });

  /** Two releases of one big file, the second with 50 small edits, and the delta job between them. */
  const bigPair = async (seed: number, bytes: number, version: number): Promise<Release> => {
    const big = noise(seed, bytes);
    const older = await release({ 'big.bin': big }, version);
    const changed = Buffer.from(big);
    for (let i = 0; i < 50; i += 1) changed.write(`edit-${i}`, i * Math.floor(bytes / 50) + 17);
    const newer = await release({ 'big.bin': changed }, version + 1);
    await server.api(`/v1/releases/${newer.id}/deltas`, { method: 'POST', json: { from: older.id } });
    return newer;
  };

  // Faults of the worker, not of the database: run once (12 MB builds), on SQLite.
  if (kind === 'sqlite') {
    it('picks up the job of a worker killed with SIGKILL mid-build', async () => {
      const v7 = await bigPair(11, 12 * 1024 * 1024, 6);
      await until('the build to start', async () =>
        (await deltasOf(v7.id))[0]?.state === 'building' ? true : undefined,
      );
      await worker.kill();
      expect((await deltasOf(v7.id))[0]?.state).toBe('building');
      worker = await startWorker(env);
      const [delta] = await settled(v7.id, 1);
      expect(delta?.state).toBe('ready');
      expect(delta?.size).toBeLessThan(200_000);
    }, 180_000);

    it('takes its sandboxed encoder down with a worker killed alone, and sweeps stale staging at the next start', async () => {
      const tmp = join(server.dataDir, 'tmp');
      const staging = (): string[] => readdirSync(tmp).filter((name) => name.startsWith('staging-'));
      // Staging the previous test's killed build left behind is not this build's.
      const before = existsSync(tmp) ? staging() : [];
      // 8 MB of noise: about 12 MB once gnuTarLayer writes it as UTF-8, under the 16 MiB patch cap.
      const v9 = await bigPair(13, 8 * 1024 * 1024, 8);
      const workerPid = worker.child.pid ?? 0;
      // The sandboxed encoder under the worker, mid-build: its staging folder exists.
      const family = await until('the sandboxed encoder building under the worker', async () => {
        const pids = descendantsOf(workerPid);
        return pids.length > 0 && staging().some((name) => !before.includes(name)) ? pids : undefined;
      });
      expect(family.length).toBeGreaterThanOrEqual(1);
      const building = staging().filter((name) => !before.includes(name));

      await worker.killAlone();
      await until(
        'every process the worker started to exit',
        async () => (family.every((pid) => !isRunning(pid)) ? true : undefined),
        5000,
      );
      // The encoder saw its parent go and discarded the build's staging on its way out.
      expect(building.length).toBeGreaterThan(0);
      expect(building.filter((name) => existsSync(join(tmp, name)))).toEqual([]);

      // Staging a build killed long ago left (its heartbeat stopped), and one whose owner still works.
      const stale = join(tmp, `staging-${randomUUID()}`);
      const live = join(tmp, `staging-${randomUUID()}`);
      for (const dir of [stale, live]) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'section.bin'), Buffer.alloc(1024));
      }
      const hoursAgo = new Date(Date.now() - 2 * 3_600_000);
      utimesSync(stale, hoursAgo, hoursAgo);
      worker = await startWorker(env);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true);
      rmSync(live, { recursive: true });
      const [delta] = await settled(v9.id, 1);
      expect(delta?.state).toBe('ready');
    }, 180_000);
  }
});
