/**
 * Rollout engine benchmark: how long planning, starting and stepping a rollout of N devices take on
 * the real server (SQLite by default, PostgreSQL with --postgres URL), and how long the rollout's
 * view takes to build. Device reports are written straight into the `devices` table (as the push
 * channel's coalesced writer would), so this measures the engine, not MQTT.
 *
 *   node -r ./bench/support/swc-register.cjs bench/rollout-engine.ts --devices 10000
 *
 * Prints a Markdown table and a JSON line.
 */
import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { Kysely } from 'kysely';
import { RolloutPlan, RolloutView } from '@ferry/protocol';
import { loadServerConfig } from '../apps/server/src/config/config';
import { DATABASE } from '../apps/server/src/database/database.module';
import { Database } from '../apps/server/src/database/database.types';
import { FleetsService } from '../apps/server/src/fleets/fleets.service';
import { ReleasesService } from '../apps/server/src/releases/releases.service';
import { RolloutRunningService } from '../apps/server/src/rollouts/rollout-running.service';
import { createServer } from '../apps/server/src/server.factory';
import { dockerArchive, gnuTarLayer } from '../test/support/hostile-archives';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 1) {
  const arg = process.argv[i] ?? '';
  if (arg.startsWith('--')) args.set(arg.slice(2), process.argv[i + 1] ?? '');
}
const COUNT = Number(args.get('devices') ?? 10_000);

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-rollout-'));
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const config = await loadServerConfig({
    DATA_DIR: dataDir,
    FERRY_ADMIN_TOKEN: token,
    HOST: '127.0.0.1',
    PORT: '0',
    MQTT_PORT: '0',
    LOG_LEVEL: 'warn',
    // Steps are driven by the benchmark, not the clock.
    FERRY_ROLLOUT_TICK_MS: '60000',
    REDIS_PREFIX: `ferry-bench-${randomBytes(4).toString('hex')}:`,
    FERRY_QUEUE_PREFIX: `bench-${randomBytes(4).toString('hex')}`,
    ...(args.get('postgres') ? { DATABASE_URL: args.get('postgres') } : {}),
  });
  const app = await createServer(config, { quiet: true });
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer() as { address(): { port: number } }).address().port}`;
  const get = <T>(t: unknown): T => app.get(t as never, { strict: false });
  const db = get<Kysely<Database>>(DATABASE);
  const rollouts = get<RolloutRunningService>(RolloutRunningService);
  const fleet = await get<FleetsService>(FleetsService).create({ name: 'bench rollouts', arch: 'amd64' });
  const push = async (version: number): Promise<string> => {
    const work = mkdtempSync(join(tmpdir(), 'ferry-bench-layer-'));
    const archive = await dockerArchive([gnuTarLayer(work, { 'app/version': `v${version}\n` })], {
      repoTag: 'app:1',
    });
    rmSync(work, { recursive: true, force: true });
    const release = await get<ReleasesService>(ReleasesService).push(fleet.slug, Readable.from([archive]), {
      version,
    });
    return release.id;
  };
  const v1 = await push(1);
  const v2 = await push(2);

  const now = new Date().toISOString();
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < COUNT; i += 500) {
      await trx
        .insertInto('devices')
        .values(
          Array.from({ length: Math.min(500, COUNT - i) }, () => {
            const uuid = randomBytes(16).toString('hex');
            return {
              uuid,
              fleet_id: fleet.id,
              name: `bench-${uuid.slice(0, 7)}`,
              key_hash: createHash('sha256').update(uuid).digest('hex'),
              device_type: null,
              agent_version: null,
              online: 1,
              last_seen_at: now,
              status: 'running',
              release_id: v1,
              target_release_id: v1,
              tags: '{}',
              created_at: now,
            };
          }),
        )
        .execute();
    }
  });

  // A new connection per call: the server's event loop is busy for seconds between calls, long
  // enough for keep-alive races (ECONNRESET) that would measure the client, not the engine.
  const api = <T>(path: string, body?: unknown): Promise<{ ms: number; value: T }> =>
    new Promise((resolve, reject) => {
      const start = performance.now();
      const request = http.request(
        `${url}${path}`,
        {
          method: body === undefined ? 'GET' : 'POST',
          agent: false,
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
            if ((response.statusCode ?? 500) >= 400)
              reject(new Error(`${path}: ${response.statusCode} ${JSON.stringify(value)}`));
            else resolve({ ms: performance.now() - start, value });
          });
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const strategy = { batches: [1, '10%', '50%', '100%'], bakeSeconds: 0, deviceTimeoutSeconds: 3600 };
  const rows: [string, number][] = [];
  const plan = await api<{ plan: RolloutPlan }>(`/v1/fleets/${fleet.slug}/rollouts`, {
    releaseId: v2,
    strategy,
    dryRun: true,
  });
  rows.push([`plan (dry run) of ${COUNT} devices`, plan.ms]);
  const created = await api<RolloutView>(`/v1/fleets/${fleet.slug}/rollouts`, { releaseId: v2, strategy });
  rows.push(['create: store the plan, start batch 1, notify', created.ms]);
  const id = created.value.id;
  const time = async (label: string, fn: () => Promise<unknown>): Promise<void> => {
    const start = performance.now();
    await fn();
    rows.push([label, performance.now() - start]);
  };
  await time('first step with nothing new (reads every device)', () => rollouts.step(id));
  await time('next step with nothing new (one aggregate query)', () => rollouts.step(id));
  for (let batch = 1; batch <= created.value.batches.length; batch += 1) {
    const uuids = (
      await db
        .selectFrom('rollout_devices')
        .select('device_uuid')
        .where('rollout_id', '=', id)
        .where('batch', '=', batch)
        .execute()
    ).map((r) => r.device_uuid);
    const at = new Date().toISOString();
    for (let i = 0; i < uuids.length; i += 500) {
      await db
        .updateTable('devices')
        .set({
          status: 'running',
          update_release_id: v2,
          release_id: v2,
          state_at: at,
          bytes_done: 300,
          bytes_total: 300,
        })
        .where('uuid', 'in', uuids.slice(i, i + 500))
        .execute();
    }
    const next = created.value.batches[batch]?.size;
    await time(
      `step: batch ${batch} (${uuids.length} devices) up and passed${next ? `, batch ${batch + 1} (${next}) notified` : ', rollout completed'}`,
      () => rollouts.step(id),
    );
  }
  const view = await api<RolloutView>(`/v1/rollouts/${id}`);
  rows.push([`GET /v1/rollouts/:id (${view.value.history.length} samples)`, view.ms]);
  if (view.value.state !== 'completed')
    throw new Error(`rollout ended ${view.value.state}: ${view.value.reason}`);
  const rss = process.memoryUsage().rss;

  process.stdout.write(
    `\n${COUNT} devices, ${config.database.kind}, batches ${strategy.batches.join(', ')}\n\n`,
  );
  process.stdout.write('| operation | ms |\n| --- | ---: |\n');
  for (const [label, ms] of rows) process.stdout.write(`| ${label} | ${ms.toFixed(0)} |\n`);
  process.stdout.write(`\nserver RSS at the end: ${(rss / 1024 / 1024).toFixed(0)} MiB\n`);
  process.stdout.write(`${JSON.stringify({ devices: COUNT, database: config.database.kind, rows, rss })}\n`);
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
