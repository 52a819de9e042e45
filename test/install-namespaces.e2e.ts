import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeltaRecord, Release } from '@ferry/protocol';
import { noise } from './support/agent-images';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { createFleet, eventually } from './support/mqtt-devices';
import { TEST_REDIS_URL, deleteQueueKeys, testQueuePrefix } from './support/redis-keys';
import { DatabaseKind, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';
import { WorkerProcess, startWorker } from './support/worker-process';

const WORKER_MAIN = join(__dirname, '..', 'apps', 'worker', 'dist', 'main.js');

/** Runs a worker that is expected to refuse to start: its exit code and everything it printed. */
function workerRefusal(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WORKER_MAIN], {
      env: { ...process.env, LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** One install's server, its fleet, and a scratch folder for layers. */
interface Install {
  server: TestServer;
  id: string;
  work: string;
}

async function startInstall(kind: DatabaseKind, env: Record<string, string> = {}): Promise<Install> {
  const server = await startTestServer(kind, env, { installNamespaces: true });
  const id = readFileSync(join(server.dataDir, 'install-id'), 'utf8').trim();
  return { server, id, work: mkdtempSync(join(tmpdir(), 'ferry-install-')) };
}

/**
 * Pushes v1 and then `targets` more releases, each changing a 300 kB binary (seeded per install, so no
 * two installs share a layer), and asks for the delta from v1 to each: one delta job per target.
 */
async function requestDeltas(
  install: Install,
  name: string,
  seed: number,
  targets: number,
): Promise<Release[]> {
  const { server, work } = install;
  const fleet = await createFleet(server, name);
  const binary = noise(seed, 300_000);
  const push = async (version: number): Promise<Release> => {
    const changed = Buffer.from(binary);
    if (version > 1) changed.write(`${name} version ${version}`, 1000 * version);
    const layer = gnuTarLayer(join(work, `${fleet.slug}-${version}`), {
      'app/bin': changed.toString('latin1'),
    });
    const response = await server.api(`/v1/fleets/${fleet.slug}/releases?version=${version}`, {
      method: 'POST',
      body: await dockerArchive([layer], { repoTag: `${fleet.slug}:${version}` }),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as Release;
  };
  const v1 = await push(1);
  const releases: Release[] = [];
  for (let version = 2; version < 2 + targets; version += 1) {
    const release = await push(version);
    const requested = await server.api(`/v1/releases/${release.id}/deltas`, {
      method: 'POST',
      json: { from: v1.id },
    });
    expect(requested.status).toBe(201);
    releases.push(release);
  }
  return releases;
}

/** The delta of each release once its job finished (ready, full or failed). */
async function settledDeltas(server: TestServer, releases: Release[]): Promise<DeltaRecord[]> {
  return eventually(
    async () => {
      const deltas: DeltaRecord[] = [];
      for (const release of releases) {
        const [delta] = (await (
          await server.api(`/v1/releases/${release.id}/deltas`)
        ).json()) as DeltaRecord[];
        if (!delta || !['ready', 'full', 'failed'].includes(delta.state)) return undefined;
        deltas.push(delta);
      }
      return deltas;
    },
    90_000,
    'every delta job settled',
  );
}

describe.each(DATABASE_KINDS)('two installs on one Redis, no namespace prefixes set (%s)', (kind) => {
  const installs: Install[] = [];
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    for (const { server, work } of installs) {
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('gives each install its own namespaces, so each install’s deltas are built by its own worker', async () => {
    const a = await startInstall(kind);
    const b = await startInstall(kind);
    installs.push(a, b);
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);
    expect(b.id).not.toBe(a.id);
    expect([a.server.config.queuePrefix, a.server.config.redisPrefix]).toEqual([
      `ferry-${a.id}`,
      `ferry:${a.id}:`,
    ]);
    expect([b.server.config.queuePrefix, b.server.config.redisPrefix]).toEqual([
      `ferry-${b.id}`,
      `ferry:${b.id}:`,
    ]);
    // Workers read the install from the DATA_DIR they share with their server.
    workers.push(
      await startWorker({ DATA_DIR: a.server.dataDir, LOG_LEVEL: 'warn' }),
      await startWorker({ DATA_DIR: b.server.dataDir, LOG_LEVEL: 'warn' }),
    );
    expect(workers[0]!.output()).toContain(`queue namespace ferry-${a.id}`);
    expect(workers[1]!.output()).toContain(`queue namespace ferry-${b.id}`);
    // Three jobs per install, both queues busy at once: with one shared queue (the old default),
    // some of them went to the other install's worker and failed.
    const [releasesA, releasesB] = await Promise.all([
      requestDeltas(a, 'Install A', 21, 3),
      requestDeltas(b, 'Install B', 22, 3),
    ]);
    for (const [install, releases] of [
      [a, releasesA],
      [b, releasesB],
    ] as const) {
      const deltas = await settledDeltas(install.server, releases);
      expect(deltas.map((d) => [d.state, d.error])).toEqual(releases.map(() => ['ready', null]));
      // Each delta was written into the install's own DATA_DIR: only its own worker writes there.
      for (const delta of deltas)
        expect((await install.server.api(`/v1/blobs/${delta.digest}`)).status).toBe(200);
    }
  });

  it('refuses to start a worker whose DATA_DIR is another install’s than the queue namespace it is given, saying why', async () => {
    // Two installs of its own, so the test runs alone too (`-t`).
    const a = await startInstall(kind);
    const b = await startInstall(kind);
    installs.push(a, b);
    const refused = await workerRefusal({
      DATA_DIR: b.server.dataDir,
      FERRY_QUEUE_PREFIX: a.server.config.queuePrefix,
    });
    expect(refused.code).toBe(78);
    expect(refused.output.trim().split('\n')).toEqual([
      `ferry worker: DATA_DIR ${b.server.dataDir} is install ${b.id}, but the queue namespace "ferry-${a.id}" ` +
        `(FERRY_QUEUE_PREFIX) belongs to install ${a.id}, whose server registered it: this worker would take ` +
        `that install's delta jobs without seeing their blobs. Point DATA_DIR at that server's DATA_DIR, or ` +
        `unset FERRY_QUEUE_PREFIX so the worker serves its DATA_DIR's install`,
    ]);
  });
});

describe.each(DATABASE_KINDS)('two installs sharing a queue namespace (FERRY_QUEUE_PREFIX) (%s)', (kind) => {
  const queue = testQueuePrefix('shared');
  const installs: Install[] = [];
  let worker: WorkerProcess | undefined;

  afterAll(async () => {
    await worker?.kill();
    for (const { server, work } of installs) {
      await server.close();
      rmSync(work, { recursive: true, force: true });
    }
    await deleteQueueKeys(TEST_REDIS_URL, queue);
  });

  it('fails the other install’s job at once, naming the missing blob and the shared namespace, instead of retrying it', async () => {
    const c = await startInstall(kind, { FERRY_QUEUE_PREFIX: queue });
    installs.push(c);
    worker = await startWorker({ DATA_DIR: c.server.dataDir, FERRY_QUEUE_PREFIX: queue, LOG_LEVEL: 'warn' });
    const d = await startInstall(kind, { FERRY_QUEUE_PREFIX: queue });
    installs.push(d);
    const releases = await requestDeltas(d, 'Install D', 23, 1);
    const [delta] = await settledDeltas(d.server, releases);
    const release = releases[0]!;
    expect(delta!.state).toBe('failed');
    expect(delta!.error).toBe(
      `layer ${delta!.bases[0]} is not in this worker's blob store: the job was queued by install ${d.id}, ` +
        `but this worker's DATA_DIR (${c.server.dataDir}) is install ${c.id}'s: two installs share the queue ` +
        `namespace "${queue}" on one Redis (unset FERRY_QUEUE_PREFIX on both, or give each its own)`,
    );
    expect(release.services[0]!.layers[0]!.diffId).toBe(delta!.target);
  });
});
