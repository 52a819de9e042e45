/**
 * SQLite held by another process: how long the server's event loop stalls while writes wait for the
 * lock, with Kysely's stock driver (better-sqlite3 `busy_timeout = 5000`, what Ferry used before)
 * and with Ferry's busy-tolerant driver (`busy_timeout = 0`, retried from a timer).
 *
 * A child process takes `BEGIN EXCLUSIVE` on a WAL database for --lock-ms (default 5000). Meanwhile
 * this process issues one write every 100 ms and one read every 20 ms, as a busy server would, and
 * measures its own event-loop delay (perf_hooks.monitorEventLoopDelay) and the latency of a 10 ms
 * timer (what /healthz or an MQTT keepalive would feel).
 *
 *   node -r ./bench/support/swc-register.cjs bench/sqlite-lock.ts [--lock-ms 5000]
 *
 * Prints a Markdown table and a JSON line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { BusyTolerantSqliteDialect } from '../apps/server/src/database/sqlite-dialect';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 1) {
  const arg = process.argv[i] ?? '';
  if (arg.startsWith('--')) args.set(arg.slice(2), process.argv[i + 1] ?? '');
}
const LOCK_MS = Number(args.get('lock-ms') ?? 5000);

interface Schema {
  writes: { id: number; at: number };
}

const HOLDER = `
const db = new (require(process.argv[1]))(process.argv[2]);
db.exec('BEGIN EXCLUSIVE');
process.stdout.write('locked\\n');
setTimeout(() => { db.exec('COMMIT'); db.close(); process.exit(0); }, Number(process.argv[3]));
`;

async function run(kind: 'stock' | 'ferry'): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-sqlite-'));
  const file = join(dir, 'bench.sqlite');
  const db = new Kysely<Schema>({
    dialect:
      kind === 'ferry'
        ? new BusyTolerantSqliteDialect({ file, busyTimeoutMs: LOCK_MS * 4 })
        : new SqliteDialect({
            database: () => {
              const handle = new SqliteDatabase(file);
              handle.pragma('journal_mode = WAL');
              handle.pragma('busy_timeout = 5000');
              return Promise.resolve(handle);
            },
          }),
  });
  await sql`create table writes (id integer primary key, at real not null)`.execute(db);
  const holder = spawn(
    process.execPath,
    ['-e', HOLDER, require.resolve('better-sqlite3'), file, String(LOCK_MS)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise((resolve) => holder.stdout.once('data', resolve));
  const released = new Promise<number>((resolve) => holder.once('exit', () => resolve(performance.now())));
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  // The monitor's first sample only sets its clock: let it take one before anything can block.
  await sleep(50);
  const started = performance.now();
  const writes: Promise<unknown>[] = [];
  const errors: string[] = [];
  let timerWorst = 0;
  let readWorst = 0;
  let reads = 0;
  let lastWriteDone = 0;
  const timers = (async () => {
    while (performance.now() - started < LOCK_MS + 500) {
      const before = performance.now();
      await sleep(10);
      timerWorst = Math.max(timerWorst, performance.now() - before - 10);
    }
  })();
  const readers = (async () => {
    while (performance.now() - started < LOCK_MS + 500) {
      const before = performance.now();
      await db
        .selectFrom('writes')
        .select(sql<number>`count(*)`.as('n'))
        .execute();
      readWorst = Math.max(readWorst, performance.now() - before);
      reads += 1;
      await sleep(20);
    }
  })();
  for (let i = 0; performance.now() - started < LOCK_MS - 100; i += 1) {
    writes.push(
      db
        .insertInto('writes')
        .values({ id: i, at: performance.now() })
        .execute()
        .then(() => (lastWriteDone = performance.now()))
        .catch((error: Error) => errors.push(error.message)),
    );
    await sleep(100);
  }
  await Promise.all([...writes, timers, readers]);
  const releasedAt = await released;
  lag.disable();
  const stored = Number(
    (
      await db
        .selectFrom('writes')
        .select(sql<number>`count(*)`.as('n'))
        .executeTakeFirst()
    )?.n ?? 0,
  );
  await db.destroy();
  rmSync(dir, { recursive: true, force: true });
  return {
    driver: kind === 'ferry' ? 'Ferry (busy_timeout 0 + async retry)' : 'Kysely stock (busy_timeout 5000)',
    writesIssued: writes.length,
    writesStored: stored,
    writeErrors: errors.length,
    reads,
    loopDelayMaxMs: Math.round(lag.max / 1e6),
    loopDelayP99Ms: Math.round(lag.percentile(99) / 1e6),
    timer10msWorstLateMs: Math.round(timerWorst),
    readWorstMs: Math.round(readWorst),
    lastWriteAfterReleaseMs: Math.round(Math.max(0, lastWriteDone - releasedAt)),
  };
}

async function main(): Promise<void> {
  const rows = [await run('stock'), await run('ferry')];
  const keys = Object.keys(rows[0] ?? {});
  process.stdout.write(`lock held ${LOCK_MS} ms by another process (BEGIN EXCLUSIVE, WAL)\n\n`);
  process.stdout.write(`| ${keys.join(' | ')} |\n| ${keys.map(() => '---').join(' | ')} |\n`);
  for (const row of rows) process.stdout.write(`| ${keys.map((k) => String(row[k])).join(' | ')} |\n`);
  process.stdout.write(`\n${JSON.stringify({ lockMs: LOCK_MS, rows })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
