/**
 * MQTT push benchmark: N simulated devices connect and subscribe to their `target` topic; the server
 * changes the target of all of them at once through TargetNotifier; then every device reports
 * progress. Run against the embedded Aedes broker and against Mosquitto (MQTT_URL) in one go.
 *
 *   node -r ./bench/support/swc-register.cjs bench/mqtt-notify.ts --devices 10000 --workers 2
 *
 * Options: --devices N (10000), --workers W (2), --reports K progress reports per device (5),
 * --brokers embedded,mosquitto,mosquitto-tuned (the last starts its own Mosquitto on 127.0.0.1:18831),
 * --profile (embedded only: where the connect storm's CPU time goes, by function, and what each
 * connected device keeps on the heap, by constructor; printed to stderr). Loopback only: the
 * embedded broker on a free port, Mosquitto on 127.0.0.1:1883 (anonymous). Prints a Markdown table
 * and a JSON line.
 */
import 'reflect-metadata';
import { ChildProcess, fork, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely } from 'kysely';
import { MqttClient, connectAsync } from 'mqtt';
import { TargetNotice, deviceTopic } from '@ferry/protocol';
import { BrokerService } from '../apps/server/src/broker/broker.service';
import { TargetNotifier } from '../apps/server/src/targets/target-notifier.service';
import { loadServerConfig } from '../apps/server/src/config/config';
import { DATABASE } from '../apps/server/src/database/database.module';
import { Database } from '../apps/server/src/database/database.types';
import { DeviceStateService } from '../apps/server/src/device-state/device-state.service';
import { FleetsService } from '../apps/server/src/fleets/fleets.service';
import { createServer } from '../apps/server/src/server.factory';
import { Share, heapByConstructor, startCpuProfile } from './support/process-profile';

type Command =
  | { cmd: 'connect'; url: string; devices: { uuid: string; key: string }[]; releaseId: string }
  | { cmd: 'report'; reports: number; releaseId: string }
  | { cmd: 'times' }
  | { cmd: 'cleanup'; external: boolean };
type Reply =
  | { type: 'ready' }
  | { type: 'connected'; failed: number }
  | { type: 'notified'; times: number[] }
  | { type: 'reported' }
  | { type: 'done' };

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 1) {
  const arg = process.argv[i] ?? '';
  if (arg.startsWith('--')) args.set(arg.slice(2), process.argv[i + 1] ?? '');
}

// ---------- worker: many devices in one process ----------

function worker(): void {
  let clients: { client: MqttClient; uuid: string }[] = [];
  let devices: { uuid: string; key: string }[] = [];
  let url = '';
  const send = (reply: Reply): void => void process.send?.(reply);
  let times: number[] = [];
  process.on('message', (message: Command) => {
    void (async () => {
      if (message.cmd === 'times') {
        send({ type: 'notified', times });
      } else if (message.cmd === 'connect') {
        url = message.url;
        devices = message.devices;
        times = [];
        let failed = 0;
        const connectOne = async (d: {
          uuid: string;
          key: string;
        }): Promise<{ client: MqttClient; uuid: string } | null> => {
          try {
            const client = await connectAsync(url, {
              clientId: d.uuid,
              username: d.uuid,
              password: d.key,
              protocolVersion: 4,
              clean: false,
              keepalive: 300,
              reconnectPeriod: 0,
              connectTimeout: 60_000,
            });
            client.on('message', (topic, payload) => {
              if (payload.length === 0) return;
              const notice = JSON.parse(payload.toString()) as { releaseId: string };
              if (notice.releaseId !== message.releaseId) return;
              times.push(Date.now());
              if (times.length === devices.length) send({ type: 'notified', times });
            });
            await client.subscribeAsync(deviceTopic(d.uuid, 'target'), { qos: 1 });
            return { client, uuid: d.uuid };
          } catch {
            failed += 1;
            return null;
          }
        };
        // At most 200 handshakes in flight per worker: a real fleet reconnects in waves too.
        const queue = [...devices];
        const results: ({ client: MqttClient; uuid: string } | null)[] = [];
        await Promise.all(
          Array.from({ length: 200 }, async () => {
            for (let d = queue.shift(); d; d = queue.shift()) results.push(await connectOne(d));
          }),
        );
        clients = results.filter((c) => c !== null);
        send({ type: 'connected', failed });
      } else if (message.cmd === 'report') {
        const total = 50_000_000;
        const sent: Promise<unknown>[] = [];
        for (let k = 1; k <= message.reports; k += 1) {
          for (const { client, uuid } of clients) {
            const status = k === message.reports ? 'downloaded' : 'downloading';
            const body = {
              status,
              releaseId: message.releaseId,
              bytesDone: (total / message.reports) * k,
              bytesTotal: total,
            };
            sent.push(client.publishAsync(deviceTopic(uuid, 'state'), JSON.stringify(body), { qos: 1 }));
          }
          await new Promise((r) => setImmediate(r));
        }
        await Promise.all(sent);
        send({ type: 'reported' });
      } else {
        await Promise.all(clients.map(({ client }) => client.endAsync(true).catch(() => undefined)));
        if (message.external) {
          // Leave no sessions or retained notices behind on the shared Mosquitto.
          const queue = [...devices];
          await Promise.all(
            Array.from({ length: 100 }, async () => {
              for (let d = queue.shift(); d; d = queue.shift()) {
                const c = await connectAsync(url, {
                  clientId: d.uuid,
                  clean: true,
                  protocolVersion: 4,
                  reconnectPeriod: 0,
                }).catch(() => null);
                await c?.publishAsync(deviceTopic(d.uuid, 'target'), '', { qos: 1, retain: true });
                await c?.publishAsync(deviceTopic(d.uuid, 'state'), '', { qos: 0, retain: true });
                await c?.endAsync();
              }
            }),
          );
        }
        send({ type: 'done' });
        process.exit(0);
      }
    })();
  });
  send({ type: 'ready' });
}

// ---------- coordinator: the server process ----------

interface Result {
  broker: string;
  devices: number;
  connected: number;
  connectSeconds: number;
  connectsPerSecond: number;
  brokerBytesPerDevice: number;
  /** CPU the broker process used during the connect storm, per device (embedded: the whole server). */
  brokerCpuUsPerConnect: number;
  publishMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  notified: number;
  allNotifiedUnder5s: boolean;
  stateMessages: number;
  stateSeconds: number;
  stateMessagesPerSecond: number;
  dbRowsWritten: number;
  dbFlushes: number;
  finalStatesCorrect: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** The shared Mosquitto's RSS; it keeps its high-water mark, so only a first run after its start is telling. */
function mosquittoRss(): number {
  const pid = readFileSync('/run/mosquitto/mosquitto.pid', 'utf8').trim();
  return rssOf(Number(pid));
}

function heap(): number {
  global.gc?.();
  return process.memoryUsage().rss;
}

type BrokerKind = 'embedded' | 'mosquitto' | 'mosquitto-tuned';

/**
 * A Mosquitto of our own on 127.0.0.1:18831 with the queue limits README.md recommends (the shared
 * one on 1883 keeps Debian's defaults). Fresh, so its RSS growth is the cost of these devices.
 */
function startTunedMosquitto(): { url: string; pid: number; stop: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-mosquitto-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'listener 18831 127.0.0.1',
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 100000',
      'max_inflight_messages 0',
      '',
    ].join('\n'),
  );
  const child = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
  return {
    url: 'mqtt://127.0.0.1:18831',
    pid: child.pid ?? 0,
    stop: () => {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** User + system CPU time of a process in µs, from /proc (clock ticks of 10 ms). */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

async function runOne(
  kind: BrokerKind,
  count: number,
  workerCount: number,
  reports: number,
): Promise<Result> {
  const tuned = kind === 'mosquitto-tuned' ? startTunedMosquitto() : null;
  if (tuned) await new Promise((r) => setTimeout(r, 300));
  const externalUrl = tuned ? tuned.url : kind === 'mosquitto' ? 'mqtt://127.0.0.1:1883' : null;
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  const config = await loadServerConfig({
    DATA_DIR: dataDir,
    FERRY_ADMIN_TOKEN: `bench-${randomBytes(16).toString('hex')}`,
    HOST: '127.0.0.1',
    PORT: '0',
    MQTT_PORT: '0',
    LOG_LEVEL: 'warn',
    REDIS_PREFIX: `ferry-bench-${randomBytes(4).toString('hex')}:`,
    ...(externalUrl ? { MQTT_URL: externalUrl } : {}),
  });
  const app = await createServer(config, { quiet: true });
  await app.listen(0, '127.0.0.1');
  const get = <T>(token: unknown): T => app.get(token as never, { strict: false });
  const db = get<Kysely<Database>>(DATABASE);
  const fleet = await get<FleetsService>(FleetsService).create({
    name: `bench ${kind}`,
    arch: 'amd64',
  });

  // Register N devices in bulk, straight into the table (the API path is measured elsewhere).
  const devices = Array.from({ length: count }, () => ({
    uuid: randomBytes(16).toString('hex'),
    key: randomBytes(32).toString('base64url'),
  }));
  const now = new Date().toISOString();
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < devices.length; i += 500) {
      await trx
        .insertInto('devices')
        .values(
          devices.slice(i, i + 500).map((d) => ({
            uuid: d.uuid,
            fleet_id: fleet.id,
            name: `bench-${d.uuid.slice(0, 7)}`,
            key_hash: createHash('sha256').update(d.key).digest('hex'),
            device_type: null,
            agent_version: null,
            online: 0,
            last_seen_at: null,
            status: 'registered',
            release_id: null,
            target_release_id: null,
            tags: '{}',
            created_at: now,
          })),
        )
        .execute();
    }
  });

  const broker = get<BrokerService>(BrokerService);
  const url = externalUrl ?? `mqtt://127.0.0.1:${broker.port()}`;
  const memory = kind === 'embedded' ? heap : tuned ? () => rssOf(tuned.pid) : mosquittoRss;
  const cpu = (): number => {
    if (kind === 'embedded') {
      const { user, system } = process.cpuUsage();
      return user + system;
    }
    return cpuOf(tuned ? tuned.pid : Number(readFileSync('/run/mosquitto/mosquitto.pid', 'utf8').trim()));
  };
  const releaseId = randomBytes(8).toString('hex');
  const workers: ChildProcess[] = Array.from({ length: workerCount }, () =>
    fork(__filename, ['--worker'], { execArgv: ['-r', join(__dirname, 'support/swc-register.cjs')] }),
  );
  const reply = (w: ChildProcess, type: Reply['type']): Promise<Reply> =>
    new Promise<Reply>((resolve) => {
      const on = (m: Reply): void => {
        if (m.type !== type) return;
        w.off('message', on);
        resolve(m);
      };
      w.on('message', on);
    });
  const replies = (type: Reply['type']): Promise<Reply[]> => Promise.all(workers.map((w) => reply(w, type)));
  await replies('ready');
  const profiling = kind === 'embedded' && args.has('profile');
  const heapBefore = profiling ? await heapByConstructor(Infinity) : null;
  const before = memory();
  const stopCpu = profiling ? await startCpuProfile() : null;
  const cpuBefore = cpu();
  const connectStart = Date.now();
  const connected = replies('connected');
  workers.forEach((w, i) =>
    w.send({
      cmd: 'connect',
      url,
      releaseId,
      devices: devices.filter((_, j) => j % workerCount === i),
    } satisfies Command),
  );
  const failed = (await connected).reduce((n, r) => n + (r.type === 'connected' ? r.failed : 0), 0);
  const connectSeconds = (Date.now() - connectStart) / 1000;
  const connectCpuUs = cpu() - cpuBefore;
  const cpuProfile = stopCpu ? await stopCpu(25) : null;
  await new Promise((r) => setTimeout(r, 1500));
  const after = memory();
  if (cpuProfile && heapBefore)
    reportProfile(cpuProfile, heapBefore, await heapByConstructor(Infinity), count - failed);

  const notice: TargetNotice = {
    releaseId,
    version: 2,
    fleetId: fleet.id,
    issuedAt: new Date().toISOString(),
    blobsUrl: `${config.http.publicUrl}/v1/blobs`,
  };
  const notifier = get<TargetNotifier>(TargetNotifier);
  // A worker answers when all its devices have the notice, or when asked after 30 s.
  const notified = workers.map((w) => reply(w, 'notified'));
  const t0 = Date.now();
  await notifier.notifyTargets(devices.map((d) => ({ uuid: d.uuid, notice })));
  const publishMs = Date.now() - t0;
  const late = setTimeout(() => {
    process.stderr.write(`${kind}: not every device was notified within 30 s\n`);
    for (const w of workers) w.send({ cmd: 'times' } satisfies Command);
  }, 30_000);
  const latencies = (await Promise.all(notified))
    .flatMap((r) => (r.type === 'notified' ? r.times.map((t) => t - t0) : []))
    .sort((a, b) => a - b);
  clearTimeout(late);

  const state = get<DeviceStateService>(DeviceStateService);
  const acceptedBefore = broker.stats().accepted;
  const stateBefore = state.stats();
  const expected = (count - failed) * reports;
  const stateStart = Date.now();
  const reported = replies('reported');
  for (const w of workers) w.send({ cmd: 'report', reports, releaseId } satisfies Command);
  await reported;
  // Until all arrived, or nothing arrived for 3 s (a broker that dropped some).
  let last = { count: -1, at: Date.now() };
  for (;;) {
    const count = broker.stats().accepted - acceptedBefore;
    if (count !== last.count) last = { count, at: Date.now() };
    if (count >= expected || Date.now() - last.at > 3000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const stateSeconds = (last.at - stateStart) / 1000;
  const accepted = broker.stats().accepted - acceptedBefore;
  await state.flush();
  await new Promise((r) => setTimeout(r, config.stateFlushMs + 200));
  await state.flush();
  const stateAfter = state.stats();
  const dropped = broker.stats().dropped;
  if (Object.keys(dropped).length > 0) process.stderr.write(`${kind}: dropped ${JSON.stringify(dropped)}\n`);
  const finals = await db
    .selectFrom('devices')
    .select(db.fn.countAll<number>().as('n'))
    .where('fleet_id', '=', fleet.id)
    .where('status', '=', 'downloaded')
    .where('bytes_done', '=', 50_000_000)
    .executeTakeFirst();

  const done = replies('done');
  for (const w of workers) w.send({ cmd: 'cleanup', external: kind === 'mosquitto' } satisfies Command);
  await done;
  await app.close();
  tuned?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  return {
    broker:
      kind === 'embedded'
        ? 'embedded Aedes'
        : tuned
          ? 'own Mosquitto, README limits'
          : 'Mosquitto :1883 (MQTT_URL)',
    devices: count,
    connected: count - failed,
    connectSeconds,
    connectsPerSecond: Math.round((count - failed) / connectSeconds),
    brokerBytesPerDevice: Math.round((after - before) / Math.max(1, count - failed)),
    brokerCpuUsPerConnect: Math.round(connectCpuUs / Math.max(1, count - failed)),
    publishMs,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? NaN,
    notified: latencies.length,
    allNotifiedUnder5s:
      latencies.length === count - failed && (latencies[latencies.length - 1] ?? Infinity) < 5000,
    stateMessages: accepted,
    stateSeconds,
    stateMessagesPerSecond: Math.round(accepted / stateSeconds),
    dbRowsWritten: stateAfter.rowsWritten - stateBefore.rowsWritten,
    dbFlushes: stateAfter.flushes - stateBefore.flushes,
    finalStatesCorrect: Number(finals?.n ?? 0),
  };
}

/** Prints where the connect storm's CPU went and what each connected device keeps on the heap. */
function reportProfile(
  cpu: { totalMs: number; top: Share[] },
  before: { totalBytes: number; top: Share[] },
  after: { totalBytes: number; top: Share[] },
  connected: number,
): void {
  const out: string[] = [
    `\nCPU of the server process during the connect storm (${cpu.totalMs.toFixed(0)} ms wall):`,
  ];
  for (const s of cpu.top) out.push(`  ${s.amount.toFixed(0).padStart(7)} ms  ${s.name}`);
  const was = new Map(before.top.map((s) => [s.name, s]));
  const grown = after.top
    .map((s) => ({
      ...s,
      amount: s.amount - (was.get(s.name)?.amount ?? 0),
      count: s.count - (was.get(s.name)?.count ?? 0),
    }))
    .sort((a, b) => b.amount - a.amount)
    .slice(0, 25);
  const perDevice = (after.totalBytes - before.totalBytes) / Math.max(1, connected);
  out.push(
    `\nHeap kept per connected device: ${perDevice.toFixed(0)} B, by constructor (bytes, objects per device):`,
  );
  for (const s of grown)
    out.push(
      `  ${(s.amount / connected).toFixed(0).padStart(7)} B ${(s.count / connected).toFixed(2).padStart(6)}  ${s.name}`,
    );
  process.stderr.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  const count = Number(args.get('devices') ?? 10_000);
  const workerCount = Number(args.get('workers') ?? 2);
  const reports = Number(args.get('reports') ?? 5);
  const brokers = (args.get('brokers') ?? 'embedded,mosquitto,mosquitto-tuned').split(',') as BrokerKind[];
  const results: Result[] = [];
  for (const kind of brokers) {
    process.stderr.write(`${kind}: ${count} devices from ${workerCount} worker processes…\n`);
    results.push(await runOne(kind, count, workerCount, reports));
  }
  const rows: [string, (r: Result) => string][] = [
    ['devices connected', (r) => `${r.connected} / ${r.devices}`],
    ['connect + subscribe rate', (r) => `${r.connectsPerSecond}/s (${r.connectSeconds.toFixed(1)} s)`],
    ['broker memory per connected device', (r) => `${(r.brokerBytesPerDevice / 1024).toFixed(1)} KiB`],
    ['broker CPU per connect + subscribe', (r) => `${r.brokerCpuUsPerConnect} µs`],
    ['notifyTargets() returned after', (r) => `${r.publishMs} ms`],
    ['change → notice received, p50', (r) => `${r.p50Ms} ms`],
    ['p99', (r) => `${r.p99Ms} ms`],
    ['max (last device)', (r) => `${r.maxMs} ms`],
    ['devices notified', (r) => `${r.notified} / ${r.connected}`],
    ['all notified in < 5 s', (r) => (r.allNotifiedUnder5s ? 'yes' : '**no**')],
    [
      'state messages ingested',
      (r) =>
        `${r.stateMessages} / ${r.connected * reports} in ${r.stateSeconds.toFixed(1)} s = ${r.stateMessagesPerSecond}/s`,
    ],
    ['device rows written (flushes)', (r) => `${r.dbRowsWritten} (${r.dbFlushes})`],
    ['final state correct in DB', (r) => `${r.finalStatesCorrect} / ${r.connected}`],
  ];
  const lines = [
    `| | ${results.map((r) => r.broker).join(' | ')} |`,
    `| --- | ${results.map(() => '---').join(' | ')} |`,
    ...rows.map(([name, f]) => `| ${name} | ${results.map(f).join(' | ')} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n\n${JSON.stringify(results)}\n`);
  process.exit(0);
}

if (process.argv.includes('--worker')) worker();
else
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
