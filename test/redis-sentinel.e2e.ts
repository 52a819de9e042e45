import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeltaRecord, Device, Release, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { noise } from './support/agent-images';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { createFleet } from './support/mqtt-devices';
import { SentinelGroup, startSentinelGroup } from './support/redis-sentinel';
import { testQueuePrefix, testRedisPrefix } from './support/redis-keys';
import { ServerProcess, startServerProcess } from './support/server-process';
import { collectEvents, json, layersOf, until, waitForRollout } from './support/simulator-harness';
import { WorkerProcess, startWorker } from './support/worker-process';

const DEVICES = 30;

/**
 * Redis behind Sentinel (issue 15 item 7): a primary, a replica and three sentinels of the test's
 * own; a server process (embedded broker with `MQTT_CLUSTER=redis`) and a worker find the primary
 * through the sentinels. The primary is killed with SIGKILL while the rollout's delta is being
 * built: after the failover the delta queue, the broker state kept in Redis and the event stream
 * keep working, so the delta is built, every device is told and updates, and the rollout completes.
 */
describe('Redis Sentinel failover mid-rollout', () => {
  let work: string;
  let group: SentinelGroup;
  let server: ServerProcess;
  let worker: WorkerProcess;
  let simulator: Simulator | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-sentinel-e2e-'));
    group = await startSentinelGroup();
    const env = {
      ...group.env,
      // Their own Redis: named as in every test, nothing to delete from the machine's Redis after.
      REDIS_PREFIX: testRedisPrefix(),
      FERRY_QUEUE_PREFIX: testQueuePrefix('sentinel'),
    };
    server = await startServerProcess({
      ...env,
      MQTT_CLUSTER: 'redis',
      FERRY_ROLLOUT_TICK_MS: '250',
      FERRY_STATE_FLUSH_MS: '200',
      LOG_LEVEL: 'info',
    });
    worker = await startWorker({
      ...env,
      DATA_DIR: server.dataDir,
      WORKER_LOCK_MS: '5000',
      LOG_LEVEL: 'info',
    });
  }, 180_000);

  afterAll(async () => {
    await simulator?.stop();
    await worker?.kill();
    await server?.stop();
    await group?.stop();
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('builds the delta, tells every device and completes the rollout across a primary killed with SIGKILL', async () => {
    const fleet = await createFleet(server, 'Sentinel');
    const big = noise(21, 4 * 1024 * 1024);
    const release = async (content: Buffer, version: number): Promise<Release> => {
      const layer = gnuTarLayer(join(work, `v${version}`), {
        'app/big.bin': content.toString('latin1'),
        'app/VERSION': `${version}\n`,
      });
      const response = await server.api(`/v1/fleets/${fleet.slug}/releases?version=${version}`, {
        method: 'POST',
        body: await dockerArchive([layer], { repoTag: 'app:latest' }),
        headers: { 'content-type': 'application/x-tar' },
      });
      return json<Release>(response, 201);
    };
    const v1 = await release(big, 1);
    simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: DEVICES,
      stepMs: 50,
      running: { id: v1.id, layers: layersOf(v1) },
    });
    const devices = simulator.devices;
    await until(
      async () => {
        const listed = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`), 200);
        return listed.length === DEVICES && listed.every((d) => d.releaseId === v1.id) ? true : undefined;
      },
      60_000,
      `${DEVICES} devices reporting v1`,
    );
    const events = collectEvents(server, fleet.id);

    const changed = Buffer.from(big);
    for (let i = 0; i < 40; i += 1) changed.write(`edit-${i}`, i * Math.floor(big.length / 40) + 11);
    const v2 = await release(changed, 2);
    const created = await json<RolloutView>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: {
          releaseId: v2.id,
          strategy: {
            batches: ['20%', '100%'],
            bakeSeconds: 1,
            maxFailurePercent: 0,
            onFailure: 'pause',
            deviceTimeoutSeconds: 600,
            waitForDeltasSeconds: 600,
          },
        },
      }),
      201,
    );
    const deltasOf = async (): Promise<DeltaRecord[]> =>
      json<DeltaRecord[]>(await server.api(`/v1/releases/${v2.id}/deltas`), 200);
    // The primary dies while the worker builds the delta the first batch waits for.
    await until(
      async () => ((await deltasOf())[0]?.state === 'building' ? true : undefined),
      120_000,
      'the delta build to start',
    );
    await group.killPrimary();
    const failedAt = Date.now();
    await until(
      async () => ((await group.primaryNow()) === group.replicaPort ? true : undefined),
      60_000,
      'the sentinels to promote the replica',
    );
    expect(await group.roleOf(group.replicaPort)).toBe('master');

    const rollout = await waitForRollout(
      server,
      created.id,
      (r) => r.state !== 'running',
      240_000,
      'the rollout to finish',
    ).catch((error: Error) => {
      // The poll's own request lines would fill the tail.
      const tail = (text: string): string =>
        text
          .split('\n')
          .filter((line) => !line.includes('"msg":"request completed"'))
          .slice(-25)
          .join('\n');
      // Told but silent, or never told: which side of the failover lost the notice or the reports.
      const told = devices.filter((d) => d.stats.notices.some((n) => n.releaseId === v2.id));
      const seen = `devices that received the v2 notice: ${told.length}, running v2: ${devices.filter((d) => d.running?.id === v2.id).length}, statuses ${JSON.stringify(simulator?.statuses())}`;
      throw new Error(
        `${error.message}\n${seen}\nserver: ${tail(server.output())}\nworker: ${tail(worker.output())}`,
      );
    });
    expect(`${rollout.state}: ${rollout.reason}`).toMatch(/^completed: /);
    expect(rollout.counts).toEqual({ succeeded: DEVICES });
    const [delta] = await deltasOf();
    expect(delta?.state).toBe('ready');
    // Every device got the delta and runs v2, told once.
    expect(devices.filter((d) => d.running?.id !== v2.id).map((d) => d.uuid)).toEqual([]);
    expect(devices.filter((d) => !d.stats.downloads.some((x) => x.kind === 'delta')).length).toBe(0);
    expect(devices.filter((d) => new Set(d.stats.notices.map((n) => n.issuedAt)).size !== 1).length).toBe(0);
    // The event stream carried on through the failover: the devices' progress and the completion.
    const after = events.received().filter((e) => Date.parse(e.at) > failedAt);
    expect(after.some((e) => e.type === 'device.state')).toBe(true);
    expect(
      after.some((e) => e.type === 'rollout.updated' && (e.data as { state?: string }).state === 'completed'),
    ).toBe(true);
    events.stop();
    // Both processes said Redis was lost and came back, once each, and kept running.
    for (const output of [server.output(), worker.output()]) expect(output).toMatch(/Redis is back at/);
    expect(server.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
  }, 600_000);
});
