import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import {
  DeltaRecord,
  Device,
  Release,
  RolloutDeviceView,
  RolloutView,
  releaseBlobDigests,
} from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { noise } from './support/agent-images';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { createFleet } from './support/mqtt-devices';
import { freshPostgresDatabase } from './support/postgres';
import { descendantsOf } from './support/processes';
import {
  TEST_REDIS_URL,
  deleteQueueKeys,
  deleteRedisKeys,
  testQueuePrefix,
  testRedisPrefix,
} from './support/redis-keys';
import { S3Gateway, startS3Gateway } from './support/s3-gateway';
import { ServerProcess, startServerProcess } from './support/server-process';
import { json, layersOf, until, waitForRollout } from './support/simulator-harness';
import { TcpBalancer, startTcpBalancer } from './support/tcp-balancer';
import { WorkerProcess, startWorker } from './support/worker-process';

/** Simulated devices: modest in CI; `FERRY_SCALEOUT_DEVICES=2000` for the full run (BENCHMARKS.md). */
const DEVICES = Number(process.env.FERRY_SCALEOUT_DEVICES ?? 150);
/** Generous for a loaded 2-core machine, and growing with the fleet. */
const ROLLOUT_MS = 240_000 + DEVICES * 150;
const BLOB_PREFIX = 'ferry';

/**
 * Ferry past one machine, as issue 15 item 6 asks: three real server processes behind a TCP load
 * balancer and two real delta workers, on one fresh PostgreSQL database, one Redis (`MQTT_CLUSTER=redis`
 * broker state, queues, leases) and a Ceph RADOS gateway as the object store; each process has its own
 * data folder (no shared disk). Simulated devices connect through the balancer to all three MQTT
 * listeners. A staged rollout with deltas runs while the worker building the delta is killed with
 * SIGKILL mid-build and one server is killed with SIGKILL mid-rollout.
 */
describe(`${DEVICES} devices on three server processes and two workers, sharing PostgreSQL, Redis and S3`, () => {
  let work: string;
  let s3: S3Gateway;
  let bucket: string;
  let database: { url: string; drop: () => Promise<void> };
  const redisPrefix = testRedisPrefix();
  const queuePrefix = testQueuePrefix('scaleout');
  const servers: ServerProcess[] = [];
  const workers: WorkerProcess[] = [];
  let http: TcpBalancer;
  let mqtt: TcpBalancer;
  let simulator: Simulator | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-scale-out-'));
    s3 = await startS3Gateway();
    bucket = await s3.newBucket();
    database = await freshPostgresDatabase();
    const shared = {
      ...s3.env(bucket, BLOB_PREFIX),
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: redisPrefix,
      FERRY_QUEUE_PREFIX: queuePrefix,
    };
    const serverEnv = {
      ...shared,
      DATABASE_URL: database.url,
      MQTT_CLUSTER: 'redis',
      FERRY_ROLLOUT_TICK_MS: '250',
      FERRY_STATE_FLUSH_MS: '200',
    };
    // The first one migrates the fresh database; the other two find it migrated.
    servers.push(await startServerProcess(serverEnv));
    servers.push(...(await Promise.all([startServerProcess(serverEnv), startServerProcess(serverEnv)])));
    for (let i = 0; i < 2; i++)
      workers.push(
        await startWorker({
          ...shared,
          DATA_DIR: join(work, `worker-${i}`),
          BLOB_CACHE_MB: '64',
          // A killed worker's job is taken over once its lock has run out.
          WORKER_LOCK_MS: '5000',
          LOG_LEVEL: 'warn',
        }),
      );
    http = await startTcpBalancer(servers.map((s) => Number(new URL(s.url).port)));
    mqtt = await startTcpBalancer(servers.map((s) => s.mqttPort!));
  }, 300_000);

  afterAll(async () => {
    await simulator?.stop();
    await Promise.all(workers.map((w) => w.kill()));
    await Promise.all(servers.map((s) => s.stop()));
    await http?.close();
    await mqtt?.close();
    await database?.drop();
    await deleteRedisKeys(TEST_REDIS_URL, redisPrefix);
    await deleteQueueKeys(TEST_REDIS_URL, queuePrefix);
    await s3?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 180_000);

  it('completes a staged rollout with deltas through a worker killed mid-delta and a server killed mid-rollout: every device on the release, told once, no blob lost', async () => {
    // The operator talks to a server that stays up; devices go through the balancer (and retry).
    const api = servers[0]!.api;
    const fleet = await createFleet({ api }, 'Scale out');
    // One big file changed in 50 places: a delta build that lasts long enough to be killed.
    const big = noise(15, 6 * 1024 * 1024);
    const release = async (content: Buffer, version: number): Promise<Release> => {
      const layer = gnuTarLayer(join(work, `v${version}`), {
        'app/big.bin': content.toString('latin1'),
        'app/VERSION': `${version}\n`,
      });
      const base = gnuTarLayer(join(work, 'base'), { 'etc/os-release': 'ferry scale-out\n' });
      const response = await api(`/v1/fleets/${fleet.slug}/releases?version=${version}`, {
        method: 'POST',
        body: await dockerArchive([base, layer], { repoTag: 'app:latest' }),
        headers: { 'content-type': 'application/x-tar' },
      });
      return json<Release>(response, 201);
    };
    const v1 = await release(big, 1);

    const simulatorLog: string[] = [];
    let connected = 0;
    const started = Date.now();
    simulator = await Simulator.start({
      url: `http://127.0.0.1:${http.port}`,
      mqttUrl: `mqtt://127.0.0.1:${mqtt.port}`,
      provisioningKey: fleet.provisioningKey,
      count: DEVICES,
      stepMs: 50,
      concurrency: 20,
      // Through a balancer to processes on a loaded machine: a connect may take longer than alone.
      connectTimeoutMs: 60_000,
      running: { id: v1.id, layers: layersOf(v1) },
      log: (line) => simulatorLog.push(line),
    });
    const devices = simulator.devices;
    let rolloutId: string | undefined;
    // On a failure, what the devices and processes saw (the test's own error says what was expected):
    // first the devices the rollout still waits for, else any device told its target.
    const diagnose = async (error: unknown): Promise<never> => {
      const waitedFor = rolloutId
        ? (
            await json<RolloutDeviceView[]>(await api(`/v1/rollouts/${rolloutId}/devices`), 200).catch(
              () => [],
            )
          )
            .filter((d) => d.state === 'notified' || d.state === 'updating')
            .map((d) => d.uuid)
        : [];
      const told = [
        ...devices.filter((d) => waitedFor.includes(d.uuid)),
        ...devices.filter((d) => !waitedFor.includes(d.uuid) && d.stats.notices.length > 0),
      ].slice(0, 3);
      const views = await Promise.all(
        told.map(async (d) => ({
          sim: { running: d.running?.id, status: d.status, working: d.working, notices: d.stats.notices },
          waitedFor: waitedFor.includes(d.uuid),
          server: await (await servers[0]!.api(`/v1/devices/${d.uuid}`)).json(),
        })),
      );
      const tail = (text: string): string => text.split('\n').slice(-15).join('\n');
      const notices = devices.map((d) => d.stats.notices.length);
      throw new Error(
        [
          (error as Error).message,
          `device statuses: ${JSON.stringify(simulator?.statuses())}`,
          `notices per device: min ${Math.min(...notices)}, max ${Math.max(...notices)}`,
          `devices told: ${JSON.stringify(views)}`,
          `simulator log (last 15): ${tail(simulatorLog.join('\n'))}`,
          ...servers.map(
            (s, i) => `server ${i} (exit ${s.child.exitCode ?? s.child.signalCode}): ${tail(s.output())}`,
          ),
          ...workers.map((w, i) => `worker ${i}: ${tail(w.output())}`),
        ].join('\n'),
      );
    };
    try {
      await until(
        async () => {
          const listed = await json<Device[]>(
            await api(`/v1/fleets/${fleet.slug}/devices?limit=${DEVICES + 10}`),
            200,
          );
          return listed.length === DEVICES && listed.every((d) => d.releaseId === v1.id) ? true : undefined;
        },
        120_000,
        `${DEVICES} devices reporting v1`,
      );
      // Every server's MQTT listener carries about a third of the devices.
      expect(mqtt.open().reduce((a, b) => a + b, 0)).toBe(DEVICES);
      for (const count of mqtt.open()) expect(count).toBeGreaterThanOrEqual(Math.floor(DEVICES / 6));
      connected = Date.now();

      const changed = Buffer.from(big);
      for (let i = 0; i < 50; i += 1) changed.write(`edit-${i}`, i * Math.floor(big.length / 50) + 17);
      const v2 = await release(changed, 2);
      const deltasOf = async (): Promise<DeltaRecord[]> =>
        json<DeltaRecord[]>(await api(`/v1/releases/${v2.id}/deltas`), 200);

      const created = await json<RolloutView>(
        await api(`/v1/fleets/${fleet.slug}/rollouts`, {
          method: 'POST',
          json: {
            releaseId: v2.id,
            strategy: {
              batches: ['10%', '40%', '100%'],
              bakeSeconds: 1,
              maxFailurePercent: 0,
              onFailure: 'pause',
              deviceTimeoutSeconds: 900,
              waitForDeltasSeconds: 900,
            },
          },
        }),
        201,
      );
      rolloutId = created.id;

      // The worker whose sandboxed encoder runs the build is killed with SIGKILL, mid-delta.
      const building = await until(
        async () => {
          const [delta] = await deltasOf();
          if (delta?.state !== 'building') return undefined;
          // BullMQ forks a worker's sandboxed child at its first job: the worker with one took it.
          return workers.find((w) => descendantsOf(w.child.pid!).length > 0);
        },
        120_000,
        'a worker building the delta',
      );
      await building.kill();
      expect((await deltasOf()).map((d) => d.state)).toEqual(['building']);
      const survivor = workers.find((w) => w !== building)!;

      // Batch 1 waits for the delta, which the other worker builds once the dead one's lock ran out.
      const batch1 = created.batches[0]!.size;
      await waitForRollout(
        { api },
        created.id,
        (r) => r.currentBatch >= 2 && devices.filter((d) => d.running?.id === v2.id).length > batch1,
        ROLLOUT_MS,
        'batch 2 under way',
      );
      const [delta] = await deltasOf();
      expect(delta?.state).toBe('ready');
      expect(survivor.child.exitCode).toBeNull();

      // Mid-rollout: one server dies with SIGKILL (its devices reconnect through the balancer).
      const killed = servers[1]!;
      await killed.kill();
      const survivors = [servers[0]!, servers[2]!];
      const rollout = await waitForRollout(
        survivors[0]!,
        created.id,
        (r) => r.state === 'completed' || r.state === 'paused' || r.state === 'aborted',
        ROLLOUT_MS,
        'the rollout to finish',
      );
      expect(`${rollout.state}: ${rollout.reason}`).toMatch(/^completed: /);
      expect(rollout.counts).toEqual({ succeeded: DEVICES });

      // Every device runs v2, as it says and as the server recorded; all of them got the delta.
      expect(devices.filter((d) => d.running?.id !== v2.id).map((d) => d.uuid)).toEqual([]);
      const listed = await json<Device[]>(
        await survivors[1]!.api(`/v1/fleets/${fleet.slug}/devices?limit=${DEVICES + 10}`),
        200,
      );
      expect(listed.filter((d) => d.releaseId !== v2.id).map((d) => d.uuid)).toEqual([]);
      expect(devices.filter((d) => !d.stats.downloads.some((x) => x.kind === 'delta')).length).toBe(0);

      // Told once: each device received exactly one target notice (one issuedAt) for v2, and none for
      // any other release; a retained copy delivered again after a reconnect is the same notice.
      const told = devices.map((d) => new Set(d.stats.notices.map((n) => `${n.releaseId}@${n.issuedAt}`)));
      expect(told.filter((notices) => notices.size !== 1).map((n) => [...n])).toEqual([]);
      expect(devices.filter((d) => d.stats.notices.some((n) => n.releaseId !== v2.id)).length).toBe(0);
      expect(devices.reduce((sum, d) => sum + d.stats.updates, 0)).toBe(DEVICES);

      // No blob lost: every blob of both releases and the delta reads back from S3 with its digest.
      const digests = new Set([
        ...releaseBlobDigests(v1.manifest),
        ...releaseBlobDigests(v2.manifest),
        delta!.digest!,
      ]);
      for (const digest of digests) {
        const object = await s3.client.send(
          new GetObjectCommand({ Bucket: bucket, Key: `${BLOB_PREFIX}/blobs/sha256/${digest.slice(7)}` }),
        );
        const hash = createHash('sha256');
        for await (const chunk of object.Body as Readable) hash.update(chunk as Buffer);
        expect(`sha256:${hash.digest('hex')}`).toBe(digest);
      }
      // No shared disk: no server keeps blobs in its own data folder.
      for (const server of servers) expect(existsSync(join(server.dataDir, 'blobs'))).toBe(false);
      for (const server of survivors) expect(server.child.exitCode).toBeNull();
    } catch (error) {
      await diagnose(error);
    }
    process.stdout.write(
      `scale-out: ${DEVICES} devices registered and connected in ${((connected - started) / 1000).toFixed(1)} s, ` +
        `rollout with deltas, a worker and a server killed, completed in ${((Date.now() - connected) / 1000).toFixed(1)} s; ` +
        `MQTT connections per server ${JSON.stringify(mqtt.accepted)}\n`,
    );
  }, 900_000);
});
