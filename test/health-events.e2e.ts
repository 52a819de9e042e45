import { MqttClient } from 'mqtt';
import { ServiceState, deviceTopic } from '@ferry/protocol';
import { serviceStates } from '../devices/agent/src/service-states';
import type { ContainerInspect, EngineClient, EngineContainer } from '../devices/agent/src/engine';
import { SERVICE_LABEL } from '../devices/agent/src/container-spec';
import { RolloutHealthRepository } from '../apps/server/src/rollouts/rollout-health.repository';
import { DeviceHealthCounts } from '../apps/server/src/rollouts/health-comparison';
import {
  TestDevice,
  connectDevice,
  createFleet,
  eventually,
  getDevice,
  registerDevice,
} from './support/mqtt-devices';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

/**
 * An engine as the agent's `serviceStates` reads it (`GET /containers/json`, `GET /containers/{id}/json`):
 * its containers' restart counts and health are set by the test.
 */
class EngineStub {
  readonly containers_ = new Map<string, { name: string; restarts: number; health?: string }>();

  set(id: string, name: string, restarts: number, health?: string): void {
    this.containers_.set(id, { name, restarts, ...(health && { health }) });
  }

  async containers(): Promise<EngineContainer[]> {
    return [...this.containers_].map(([id, c]) => ({
      Id: id,
      Names: [`/${c.name}`],
      Image: 'app:1',
      ImageID: 'sha256:aaaa',
      State: 'running',
      Labels: { [SERVICE_LABEL]: c.name },
    }));
  }

  async inspectContainer(id: string): Promise<ContainerInspect | null> {
    const c = this.containers_.get(id);
    if (!c) return null;
    return {
      Id: id,
      State: {
        Status: 'running',
        Running: true,
        Restarting: false,
        ExitCode: 0,
        ...(c.health && { Health: { Status: c.health } }),
      },
      RestartCount: c.restarts,
    };
  }
}

describe.each(DATABASE_KINDS)('health events from state reports (%s)', (kind) => {
  let server: TestServer;
  let device: TestDevice;
  let client: MqttClient;
  const engine = new EngineStub();
  const started = new Date(Date.now() - 1000).toISOString();

  const publish = async (message: Record<string, unknown>): Promise<void> => {
    await client.publishAsync(deviceTopic(device.uuid, 'state'), JSON.stringify(message), { qos: 1 });
  };
  const services = (): Promise<ServiceState[]> => serviceStates(engine as unknown as EngineClient);
  const counts = async (): Promise<Record<string, number>> => {
    const all = await server.app
      .get(RolloutHealthRepository, { strict: false })
      .countsByDevice([device.uuid], started, new Date(Date.now() + 60_000).toISOString());
    return Object.fromEntries((all.get(device.uuid) ?? new Map()) as DeviceHealthCounts);
  };
  /** Waits until the stored device passes `check`. */
  const stored = async (check: (d: Awaited<ReturnType<typeof getDevice>>) => boolean, what: string) =>
    eventually(async () => (check(await getDevice(server, device.uuid)) ? true : undefined), 15_000, what);

  beforeAll(async () => {
    server = await startTestServer(kind, { FERRY_STATE_FLUSH_MS: '100' });
    const fleet = await createFleet(server, `health ${kind}`);
    device = await registerDevice(server, fleet);
    client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
  }, 60_000);

  afterAll(async () => {
    await client?.endAsync(true);
    await server?.close();
  });

  it('counts the agent’s per-service restart counts, unhealthy turns, errors, app metrics and offline transitions', async () => {
    engine.set('c0ffee000001', 'web', 4);
    engine.set('c0ffee000002', 'worker', 0);
    // The first report sets the baseline: restarts before it are not counted against anything.
    await publish({
      status: 'running',
      releaseId: null,
      services: await services(),
      metrics: { brownouts: 1 },
    });
    await stored((d) => d.status === 'running', 'first report stored');
    expect(await counts()).toEqual({});

    engine.set('c0ffee000001', 'web', 7, 'unhealthy');
    engine.set('c0ffee000002', 'worker', 1);
    await publish({ status: 'running', services: await services(), metrics: { brownouts: 4 } });
    await eventually(
      async () => ((await counts()).restarts === 4 ? true : undefined),
      15_000,
      'restarts counted',
    );
    expect(await counts()).toEqual({ restarts: 4, healthChecks: 1, 'metric:brownouts': 3 });

    await publish({ status: 'failed', error: 'service web exited with code 137' });
    await client.publishAsync(deviceTopic(device.uuid, 'presence'), JSON.stringify({ status: 'offline' }), {
      qos: 1,
      retain: true,
    });
    await eventually(
      async () => ((await counts()).offline === 1 ? true : undefined),
      15_000,
      'offline counted',
    );
    expect(await counts()).toEqual({
      restarts: 4,
      healthChecks: 1,
      'metric:brownouts': 3,
      errors: 1,
      offline: 1,
    });
  });

  it('drops reports with hostile metrics whole: nothing is counted, the session and later reports go on', async () => {
    const before = await counts();
    const dropped = async (): Promise<number> =>
      ((await (await server.api('/v1/mqtt/stats')).json()) as { dropped: Record<string, number> }).dropped
        .invalid_message ?? 0;
    const droppedBefore = await dropped();
    engine.set('c0ffee000001', 'web', 50);
    const hostile = [
      { status: 'running', services: await services(), metrics: { 'Bad-Name': 1 } },
      { status: 'running', services: await services(), metrics: { brownouts: -5 } },
      { status: 'running', services: await services(), metrics: { brownouts: 1.5 } },
      { status: 'running', services: await services(), metrics: { brownouts: '9' } },
      {
        status: 'running',
        services: await services(),
        metrics: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`m${i}`, i])),
      },
      { status: 'running', services: await services(), metrics: [1, 2] },
    ];
    for (const message of hostile) await publish(message);
    await eventually(
      async () => ((await dropped()) - droppedBefore === hostile.length ? true : undefined),
      15_000,
      'hostile reports dropped',
    );
    expect(await counts()).toEqual(before);
    const http = await server.api('/v1/device/state', {
      method: 'POST',
      token: device.apiKey,
      json: { status: 'running', metrics: { ['x'.repeat(40)]: 1 } },
    });
    expect(http.status).toBe(400);
    expect(await http.text()).toContain('metrics');
    expect(client.connected).toBe(true);
    // A good report after all that still counts from the last stored baseline (web: 7 → 50).
    await publish({ status: 'running', services: await services(), metrics: { brownouts: 4 } });
    await eventually(
      async () => ((await counts()).restarts === 4 + 43 ? true : undefined),
      15_000,
      'counted after',
    );
  });
});
