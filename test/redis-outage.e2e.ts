import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeltaRecord, Release } from '@ferry/protocol';
import { noise } from './support/agent-images';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { createFleet, eventually } from './support/mqtt-devices';
import { RedisProcess, startRedis } from './support/redis-process';
import { ServerProcess, startServerProcess } from './support/server-process';
import { freePort } from './support/simulator-harness';
import { WorkerProcess, startWorker } from './support/worker-process';

const ROOT = join(__dirname, '..');
const SERVER_MAIN = join(ROOT, 'apps', 'server', 'dist', 'main.js');
const WORKER_MAIN = join(ROOT, 'apps', 'worker', 'dist', 'main.js');

/** Runs a program expected to refuse to start: its exit code and everything it printed. */
function refusal(
  main: string,
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
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

/** Lines of `output` that contain `text`. */
const linesWith = (output: string, text: string): string[] =>
  output.split('\n').filter((line) => line.includes(text));

/** Sends SIGTERM and resolves with how long the process took to exit. */
function stopTimed(child: ChildProcess, group: boolean): Promise<number> {
  const started = Date.now();
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(Date.now() - started)));
  if (group) process.kill(-child.pid!, 'SIGTERM');
  else child.kill('SIGTERM');
  return exited;
}

describe('Redis unreachable at start', () => {
  let deadUrl: string;
  let dataDir: string;
  beforeAll(async () => {
    // A port nothing listens on (freePort closes it again), with a password that must not be printed.
    deadUrl = `redis://:hunter2-secret@127.0.0.1:${await freePort()}`;
    dataDir = mkdtempSync(join(tmpdir(), 'ferry-redis-outage-start-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it.each([
    ['server', SERVER_MAIN],
    ['worker', WORKER_MAIN],
  ])(
    'the %s exits 69 with one line naming REDIS_URL (password hidden) and the cause, no stack trace',
    async (name, main) => {
      const { code, output } = await refusal(main, {
        REDIS_URL: deadUrl,
        DATA_DIR: dataDir,
        PORT: '0',
        MQTT_PORT: '0',
        FERRY_ADMIN_TOKEN: 'redis-outage-admin-token-0123456789',
      });
      expect(code).toBe(69);
      const lines = output.trim().split('\n');
      expect(lines).toHaveLength(1);
      const url = deadUrl.replace('hunter2-secret', '***');
      expect(lines[0]).toMatch(
        new RegExp(
          `^ferry ${name}: Redis is not reachable at ${url.replace(/[.*?]/g, '\\$&')} \\(REDIS_URL\\): .*ECONNREFUSED`,
        ),
      );
      expect(output).not.toContain('hunter2-secret');
      expect(output).not.toMatch(/^\s+at /m);
    },
  );
});

describe('Redis lost and back while server and worker run', () => {
  let redis: RedisProcess;
  let server: ServerProcess;
  let worker: WorkerProcess;
  let work: string;

  beforeAll(async () => {
    redis = await startRedis(await freePort());
    work = mkdtempSync(join(tmpdir(), 'ferry-redis-outage-'));
    server = await startServerProcess({ REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    worker = await startWorker({
      DATA_DIR: server.dataDir,
      REDIS_URL: redis.url,
      FERRY_QUEUE_PREFIX: /queue namespace ([\w-]+)/.exec(server.output())![1]!,
      LOG_LEVEL: 'info',
    });
  });
  afterAll(async () => {
    await worker?.kill();
    // Redis running again (whatever the tests left), so that stop() can delete the server's keys.
    await redis?.kill();
    await redis?.start();
    await server?.stop();
    await redis?.kill();
    rmSync(work, { recursive: true, force: true });
  });

  const push = async (slug: string, binary: Buffer, version: number): Promise<Release> => {
    const layer = gnuTarLayer(join(work, `${version}`), { 'app/bin': binary.toString('latin1') });
    const response = await server.api(`/v1/fleets/${slug}/releases?version=${version}`, {
      method: 'POST',
      body: await dockerArchive([layer], { repoTag: `${slug}:${version}` }),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as Release;
  };

  it('logs one "lost" and one "back" line in each, keeps serving health, and builds work queued during the outage', async () => {
    expect(worker.output()).toContain('Ferry worker started');
    const fleet = await createFleet(server, 'Outage');
    const binary = noise(31, 200_000);
    const v1 = await push(fleet.slug, binary, 1);
    const changed = Buffer.from(binary);
    changed.write('after the outage', 5000);
    const v2 = await push(fleet.slug, changed, 2);

    await redis.kill();
    // Long enough for every client to retry many times (ioredis reconnects within 2 s each time).
    await eventually(
      async () => (linesWith(server.output(), 'Redis lost').length > 0 ? true : undefined),
      20_000,
      'the server noticing the outage',
    );
    for (let i = 0; i < 16; i += 1) {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 500));
    }
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('redis');
    // Work asked for while Redis is away is built once it is back (it waits, or reconciliation queues it).
    const requested = server.api(`/v1/releases/${v2.id}/deltas`, { method: 'POST', json: { from: v1.id } });

    await redis.start();
    expect((await requested).status).toBe(201);
    const delta = await eventually(
      async () => {
        const [d] = (await (await server.api(`/v1/releases/${v2.id}/deltas`)).json()) as DeltaRecord[];
        return d?.state === 'ready' ? d : undefined;
      },
      60_000,
      'the delta queued during the outage',
    );
    expect(delta.digest).toMatch(/^sha256:/);
    for (const [name, output] of [
      ['server', server.output()],
      ['worker', worker.output()],
    ] as const) {
      await eventually(
        async () =>
          linesWith(name === 'server' ? server.output() : worker.output(), 'Redis is back').length > 0
            ? true
            : undefined,
        15_000,
        `the ${name} noticing Redis is back`,
      );
      const now = name === 'server' ? server.output() : worker.output();
      expect({
        name,
        lost: linesWith(now, 'Redis lost').length,
        back: linesWith(now, 'Redis is back').length,
      }).toEqual({
        name,
        lost: 1,
        back: 1,
      });
      // The only line naming the refused connection is the "lost" line.
      expect({ name, refused: linesWith(now, 'ECONNREFUSED').length }).toEqual({ name, refused: 1 });
      expect(output).not.toContain('Unhandled error event');
    }
  });

  it('stops within a few seconds on SIGTERM during an outage', async () => {
    await redis.kill();
    await eventually(
      async () => (linesWith(worker.output(), 'Redis lost').length > 1 ? true : undefined),
      20_000,
      'the worker noticing the second outage',
    );
    const [serverMs, workerMs] = await Promise.all([
      stopTimed(server.child, false),
      stopTimed(worker.child, true),
    ]);
    expect({ serverMs: serverMs < 8000, workerMs: workerMs < 8000 }).toEqual({
      serverMs: true,
      workerMs: true,
    });
    expect(server.output()).not.toContain('took over');
    expect(worker.output()).not.toContain('took over');
  });
});
