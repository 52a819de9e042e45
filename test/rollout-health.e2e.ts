import { Device, Release, RolloutView } from '@ferry/protocol';
import { ReleaseHealth, Simulator } from '../devices/simulator/src';
import { TestFleet, createFleet, pushRelease } from './support/mqtt-devices';
import {
  ServerPlace,
  json,
  layersOf,
  newPlace,
  startServerAt,
  until,
  waitForRollout,
} from './support/simulator-harness';
import { ADMIN_TOKEN, DATABASE_KINDS, TestServer } from './support/test-server';
import { buildCli, ferry } from './support/cli';

type Server = TestServer & { remove: () => Promise<void> };

/** The noise every release has once running: now and then an app crash, now and then a drop. */
const NOISE: ReleaseHealth = { crashesPerMinute: 0.5, offlinePerMinute: 0.3, offlineMs: 1200 };
/** A release that passes every health check, then crash-loops and drops off the network far more. */
const BAD: ReleaseHealth = { crashesPerMinute: 12, offlinePerMinute: 4, offlineMs: 1200 };

const STRATEGY = {
  batches: [6, '100%'],
  bakeSeconds: 20,
  maxFailurePercent: 20,
  deviceTimeoutSeconds: 90,
  healthComparison: { marginPercent: 25, onWorse: 'pause' },
};

/** 24 simulated devices running v1 with the noise, and the health each release gets. */
async function noisyFleet(
  server: Server,
  name: string,
): Promise<{
  fleet: TestFleet;
  v1: Release;
  simulator: Simulator;
  releaseHealth: Record<string, ReleaseHealth>;
}> {
  const fleet = await createFleet(server, name);
  const v1 = await pushRelease(server, fleet, `${name} v1`);
  const releaseHealth: Record<string, ReleaseHealth> = {};
  const simulator = await Simulator.start({
    url: server.url,
    mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
    provisioningKey: fleet.provisioningKey,
    count: 24,
    stepMs: 30,
    running: { id: v1.id, layers: layersOf(v1) },
    health: NOISE,
    releaseHealth,
  });
  await until(
    async () => {
      const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
      return devices.length === 24 && devices.every((d) => d.releaseId === v1.id) ? true : undefined;
    },
    30_000,
    `${name}: 24 devices reporting v1`,
  );
  return { fleet, v1, simulator, releaseHealth };
}

describe.each(DATABASE_KINDS)('rollouts judged against a control group, simulated fleet (%s)', (kind) => {
  let place: ServerPlace;
  let server: Server;
  const simulators: Simulator[] = [];

  beforeAll(async () => {
    place = await newPlace({}, kind);
    server = await startServerAt(place);
    await buildCli();
  }, 180_000);
  afterAll(async () => {
    await Promise.all(simulators.map((s) => s.stop()));
    await server?.close();
    await server?.remove();
  });

  it('pauses a release that passes every health check but crash-loops and drops offline; completes a good one with the same noise', async () => {
    const [bad, good] = await Promise.all([noisyFleet(server, 'Crashy'), noisyFleet(server, 'Steady')]);
    simulators.push(bad.simulator, good.simulator);
    const v2bad = await pushRelease(server, bad.fleet, 'Crashy v2');
    bad.releaseHealth[v2bad.id] = BAD;
    const v2good = await pushRelease(server, good.fleet, 'Steady v2');
    const start = (fleet: TestFleet, releaseId: string): Promise<RolloutView> =>
      server
        .api(`/v1/fleets/${fleet.slug}/rollouts`, { method: 'POST', json: { releaseId, strategy: STRATEGY } })
        .then((r) => json<RolloutView>(r, 201));
    const [badRollout, goodRollout] = await Promise.all([
      start(bad.fleet, v2bad.id),
      start(good.fleet, v2good.id),
    ]);

    // While batch 1 bakes, the view shows the comparison so far, marked interim (not acted on).
    const baking = await waitForRollout(
      server,
      badRollout.id,
      (r) => r.batches[0]?.state === 'baking' && r.batches[0].health !== null,
      120_000,
      'bad batch 1 baking with interim figures',
    );
    expect(baking.batches[0]?.health).toMatchObject({
      interim: true,
      updated: { devices: 6 },
      control: { devices: 18 },
    });

    const paused = await waitForRollout(
      server,
      badRollout.id,
      (r) => r.state === 'paused',
      120_000,
      'bad paused',
    );
    expect(paused.reason).toMatch(/^batch 1 worse than the control group: /);
    expect(paused.batches.map((b) => b.state)).toEqual(['failed', 'pending']);
    // The failure threshold saw nothing: every updated device reported running and kept running.
    expect(paused.batches[0]?.counts).toEqual({ verifying: 6 });
    expect(paused.failures).toEqual([]);
    const verdict = paused.batches[0]?.health;
    expect(verdict).toMatchObject({
      verdict: 'worse',
      interim: false,
      updated: { devices: 6 },
      control: { devices: 18 },
    });
    // Crash loops or drops (which of the two reaches significance first depends on the machine's load):
    // every kind judged worse is worse by the margin and significant, never on one device.
    const worse = verdict?.kinds.filter((k) => k.worse) ?? [];
    expect(worse.map((k) => k.kind).filter((k) => k !== 'restarts' && k !== 'offline')).toEqual([]);
    expect(worse.length).toBeGreaterThanOrEqual(1);
    for (const kind of worse) {
      expect(kind.updated.affected).toBeGreaterThanOrEqual(2);
      expect(kind.pValue).toBeLessThan(kind.threshold ?? 0);
      expect(kind.differencePercent).toBeGreaterThan(25);
    }
    // Batch 2 was never told: its devices still run v1.
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${bad.fleet.slug}/devices`));
    expect(devices.filter((d) => d.releaseId === bad.v1.id)).toHaveLength(18);

    const done = await waitForRollout(
      server,
      goodRollout.id,
      (r) => r.state !== 'running',
      180_000,
      'good ended',
    );
    expect(done.state).toBe('completed');
    expect(done.batches.map((b) => b.state)).toEqual(['passed', 'passed']);
    expect(done.batches[0]?.health).toMatchObject({
      verdict: 'ok',
      interim: false,
      control: { devices: 18 },
    });
    expect(done.batches[1]?.health?.verdict).toBe('no-control');
    expect(done.counts).toEqual({ succeeded: 24 });

    // `ferry rollout status` shows both groups side by side with the verdict and its numbers.
    const status = await ferry(['rollout', 'status', badRollout.id], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN },
      timeoutMs: 60_000,
    });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('health of batch 1 against the control group (final');
    expect(status.stdout).toMatch(
      /updated: 6 devices on the release; control: 18 devices still on the old one/,
    );
    expect(status.stdout).toMatch(/KIND\s+UPDATED\s+EVENTS\s+CONTROL\s+EVENTS\s+DIFF\s+P\s+UNDER\s+WORSE/);
    expect(status.stdout).toMatch(
      new RegExp(
        `${worse[0]!.kind}\\s+\\d\\/6 \\(\\d+%\\)\\s+\\d+\\s+\\d+\\/18 \\(\\d+%\\)\\s+\\d+\\s+\\+\\d+ pts\\s+\\S+\\s+\\S+\\s+yes`,
      ),
    );
  }, 400_000);
});
