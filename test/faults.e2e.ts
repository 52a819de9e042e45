import { Device, Release, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { TestFleet, createFleet, pushRelease } from './support/mqtt-devices';
import { RedisProcess, startRedis } from './support/redis-process';
import {
  ServerPlace,
  freePort,
  json,
  layersOf,
  newPlace,
  startServerAt,
  until,
  waitForRollout,
} from './support/simulator-harness';
import { TcpProxy, startTcpProxy } from './support/tcp-proxy';
import { DATABASE_KINDS, TestServer } from './support/test-server';
import { WorkerProcess, startWorker } from './support/worker-process';

type Server = TestServer & { remove: () => Promise<void> };
const COUNT = 12;

/**
 * Faults in the middle of a rollout, each against a real server, worker, broker, Redis and simulated
 * devices. After each: the rollout reaches a final state, every device ends on the target, and the
 * database holds each device and delta once.
 */
describe.each(DATABASE_KINDS)('faults in the middle of a rollout (%s)', (kind) => {
  let redis: RedisProcess;
  let place: ServerPlace;
  let server: Server;
  let worker: WorkerProcess;
  let proxy: TcpProxy;
  const simulators: Simulator[] = [];

  beforeAll(async () => {
    redis = await startRedis(await freePort());
    place = await newPlace({ REDIS_URL: redis.url }, kind);
    server = await startServerAt(place);
    worker = await startWorker({
      DATA_DIR: place.dataDir,
      REDIS_URL: redis.url,
      FERRY_QUEUE_PREFIX: place.env.FERRY_QUEUE_PREFIX as string,
      WORKER_LOCK_MS: '2000',
      LOG_LEVEL: 'warn',
    });
    proxy = await startTcpProxy(server.mqttPort as number);
  });
  afterAll(async () => {
    await Promise.all(simulators.map((s) => s.stop()));
    await proxy?.close();
    await worker?.kill();
    await server?.close();
    await server?.remove();
    await redis?.kill();
  });

  async function fleetOnV1(name: string): Promise<{ fleet: TestFleet; v1: Release; simulator: Simulator }> {
    const fleet = await createFleet(server, name);
    const v1 = await pushRelease(server, fleet, `${name} v1 `.repeat(2000));
    const simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${proxy.port}`,
      provisioningKey: fleet.provisioningKey,
      count: COUNT,
      stepMs: 100,
      running: { id: v1.id, layers: layersOf(v1) },
    });
    simulators.push(simulator);
    await until(
      async () => {
        const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
        return devices.length === COUNT && devices.every((d) => d.releaseId === v1.id) ? true : undefined;
      },
      20_000,
      'devices reporting v1',
    );
    return { fleet, v1, simulator };
  }

  async function startRollout(fleet: TestFleet, release: Release): Promise<string> {
    const created = await json<RolloutView & { plan: unknown }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: {
          releaseId: release.id,
          strategy: {
            batches: [2, '50%', '100%'],
            bakeSeconds: 1,
            maxFailurePercent: 20,
            deviceTimeoutSeconds: 90,
            rollback: 'failed',
          },
        },
      }),
      201,
    );
    return created.id;
  }

  async function expectConverged(fleet: TestFleet, target: Release, rolloutId: string): Promise<void> {
    const rollout = await waitForRollout(
      server,
      rolloutId,
      (r) => r.state === 'completed',
      120_000,
      'rollout completed',
    );
    expect(rollout.counts.succeeded).toBe(COUNT);
    expect(rollout.failures).toEqual([]);
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    expect(devices).toHaveLength(COUNT);
    expect(devices.every((d) => d.releaseId === target.id && d.status === 'running')).toBe(true);
    const rows = await json<{ uuid: string }[]>(await server.api(`/v1/rollouts/${rolloutId}/devices`));
    expect(new Set(rows.map((r) => r.uuid)).size).toBe(COUNT);
    expect(rows).toHaveLength(COUNT);
    // A delta job Redis lost is found by the periodic reconciliation and built again.
    const deltas = await until(
      async () => {
        const list = await json<{ key: string; state: string }[]>(
          await server.api(`/v1/releases/${target.id}/deltas`),
        );
        return list.length > 0 && list.every((d) => d.state === 'ready' || d.state === 'full')
          ? list
          : undefined;
      },
      45_000,
      'deltas of the target built',
    );
    expect(new Set(deltas.map((d) => d.key)).size).toBe(deltas.length);
  }

  it('Redis killed and restarted empty mid-rollout: queues are rebuilt, the rollout completes', async () => {
    const { fleet } = await fleetOnV1('Redis Fault');
    const v2 = await pushRelease(server, fleet, 'Redis Fault v2 '.repeat(2000));
    const id = await startRollout(fleet, v2);
    await waitForRollout(server, id, (r) => r.batches[0]?.state !== 'pending', 30_000, 'first batch started');
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await redis.start();
    await expectConverged(fleet, v2, id);
  }, 180_000);

  it('every MQTT connection dropped and refused for 2 s mid-rollout: devices reconnect and finish', async () => {
    const { fleet } = await fleetOnV1('Broker Fault');
    const v2 = await pushRelease(server, fleet, 'Broker Fault v2 '.repeat(2000));
    const id = await startRollout(fleet, v2);
    await waitForRollout(
      server,
      id,
      (r) => (r.batches[1]?.state ?? 'pending') !== 'pending',
      60_000,
      'second batch started',
    );
    proxy.refuse(true);
    expect(proxy.drop()).toBeGreaterThanOrEqual(COUNT);
    await new Promise((r) => setTimeout(r, 2000));
    proxy.refuse(false);
    await expectConverged(fleet, v2, id);
  }, 180_000);
});
