import { join } from 'node:path';
import { Release, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle } from './support/agent-process';
import { waitForRollout } from './support/simulator-harness';

const SIMULATED = 8;

/**
 * The whole loop: real server (SQLite), delta worker, embedded MQTT broker, Redis, one real agent on
 * a real Docker engine and simulated devices, driven by staged rollouts v1 → v2 → v3. Asserts the
 * bytes sent against what full layers would have cost, the containers that end up running, and the
 * rollout records.
 */
describe('the whole loop: register, push, roll out, watch', () => {
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess;
  let uuid: string;
  let simulator: Simulator;
  let dataDir: string;
  const releases: Release[] = [];
  const rollouts: RolloutView[] = [];

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('loop');
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3 },
      { name: '3', edits: 6 },
    ]);
    dataDir = join(world.work, 'device');
    ({ agent, uuid } = await world.startAgent(dataDir));
    simulator = await Simulator.start({
      url: world.server.url,
      mqttUrl: `mqtt://127.0.0.1:${world.server.mqttPort}`,
      provisioningKey: world.fleet.provisioningKey,
      count: SIMULATED,
      stepMs: 50,
    });
  }, 180_000);
  afterAll(async () => {
    await simulator?.stop();
    await agent?.kill();
    await world?.close();
  }, 60_000);

  async function rollOut(version: number, batches: (number | string)[]): Promise<RolloutView> {
    const release = await world.push(images.archive(String(version)), version);
    releases[version] = release;
    if (version > 1) await world.deltasSettled(release.id, 1);
    const response = await world.server.api(`/v1/fleets/${world.fleet.slug}/rollouts`, {
      method: 'POST',
      json: {
        releaseId: release.id,
        strategy: {
          batches,
          bakeSeconds: 1,
          maxFailurePercent: 10,
          onFailure: 'pause',
          deviceTimeoutSeconds: 150,
          rollback: 'failed',
        },
      },
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as RolloutView;
    const done = await waitForRollout(
      world.server,
      id,
      (r) => r.state !== 'running',
      170_000,
      `rollout of v${version}`,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${agent.output().slice(-3000)}`);
    });
    rollouts[version] = done;
    return done;
  }

  it('installs v1 on every device from full layers', async () => {
    const r = await rollOut(1, ['100%']);
    expect(r.state).toBe('completed');
    expect(r.counts.succeeded).toBe(SIMULATED + 1);
    // Full layers for everyone (bytes sent come from devices' progress reports, which are coalesced).
    expect(r.bytes.sent).toBeLessThanOrEqual(r.bytes.full);
    expect(r.bytes.sent).toBeGreaterThan(r.bytes.full * 0.8);
    expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
  }, 200_000);

  it.each([2, 3])(
    'rolls v%i out in stages, sending deltas far smaller than full layers',
    async (version) => {
      const fetchedBefore = agentState(dataDir).ledger?.totalFetched ?? 0;
      const r = await rollOut(version, [1, '50%', '100%']);
      expect(r.state).toBe('completed');
      expect(r.batches.map((b) => b.state)).toEqual(['passed', 'passed', 'passed']);
      expect(r.counts.succeeded).toBe(SIMULATED + 1);
      expect(r.failures).toEqual([]);
      // Deltas for the changed layer: what was sent is a small fraction of the gzip'd layers.
      expect(r.bytes.sent).toBeGreaterThan(0);
      expect(r.bytes.sent).toBeLessThan(r.bytes.full / 10);
      // The real agent fetched only a delta's worth of bytes, and runs exactly the new release.
      const release = releases[version]!;
      const gzipOfChanged = release.services[0]!.layers[1]!.gzipSize;
      const fetched = (agentState(dataDir).ledger?.totalFetched ?? 0) - fetchedBefore;
      expect(fetched).toBeGreaterThan(0);
      expect(fetched).toBeLessThan(gzipOfChanged / 10);
      const managed = await world.engine.managed();
      expect(managed.map((c) => [c.State, c.Labels['io.ferry.release'], c.ImageID])).toEqual([
        ['running', release.id, release.services[0]!.configDigest],
      ]);
    },
    200_000,
  );

  it('keeps one record per rollout, newest first, each with every device once', async () => {
    const response = await world.server.api(`/v1/fleets/${world.fleet.slug}/rollouts`);
    const list = (await response.json()) as RolloutView[];
    expect(list.map((r) => r.releaseVersion)).toEqual([3, 2, 1]);
    expect(list.every((r) => r.state === 'completed' && r.total === SIMULATED + 1)).toBe(true);
    for (const r of list) {
      const devices = (await (await world.server.api(`/v1/rollouts/${r.id}/devices`)).json()) as {
        uuid: string;
      }[];
      expect(new Set(devices.map((d) => d.uuid)).size).toBe(SIMULATED + 1);
      expect(devices.map((d) => d.uuid)).toContain(uuid);
    }
    const saved =
      1 -
      (rollouts[2]!.bytes.sent + rollouts[3]!.bytes.sent) /
        (rollouts[2]!.bytes.full + rollouts[3]!.bytes.full);
    expect(saved).toBeGreaterThan(0.9);
  });
});
