import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Release } from '@ferry/protocol';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle } from './support/agent-process';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';

/**
 * The device agent, bundled as it ships, against the real server, delta worker, MQTT broker and a
 * real Docker engine: v1 → v2 → v3, downloading deltas for the second and third updates.
 */
describe('device agent: updates through server, worker, broker and engine', () => {
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess | undefined;
  let uuid: string;
  const releases: Release[] = [];
  let dataDir: string;

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('agent');
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3 },
      { name: '3', edits: 6 },
    ]);
    dataDir = join(world.work, 'device');
  }, 120_000);
  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('registers once with its own UUID and key, stored with mode 0600, and pins the fleet key', async () => {
    ({ agent, uuid } = await world.startAgent(dataDir));
    const state = agentState(dataDir);
    expect(state.credentials?.uuid).toMatch(/^[0-9a-f]{32}$/);
    expect(state.credentials?.signingPublicKey).toContain('PUBLIC KEY');
    const { statSync } = await import('node:fs');
    expect(statSync(join(dataDir, 'credentials.json')).mode & 0o777).toBe(0o600);
    const device = await world.device(uuid);
    expect(device.uuid).toBe(uuid);
    // A restart does not register again.
    await agent.stop();
    ({ agent } = await world.startAgent(dataDir));
    expect(agentState(dataDir).credentials?.uuid).toBe(uuid);
    expect(agent.lines().some((l) => l.msg === 'registered')).toBe(false);
  }, 60_000);

  it('installs v1 by polling and reports over HTTP while the broker is unreachable', async () => {
    await agent!.stop();
    ({ agent } = await world.startAgent(dataDir, { FERRY_MQTT_URL: 'mqtt://127.0.0.1:9' }));
    releases[1] = await world.push(images.archive('1'), 1);
    await world.setTarget(uuid, releases[1].id);
    await world.reported(uuid, 'running', releases[1].id).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-6000)}`);
    });
    const { running, all } = await runningReleases(world.engine);
    expect(running).toEqual([releases[1].id]);
    expect(all).toBe(1);
    const [container] = await world.engine.managed();
    expect(container?.Labels['io.ferry.service']).toBe('app');
    expect(container?.ImageID).toBe(releases[1].services[0]?.configDigest);
    expect(agent.lines().some((l) => l.msg === 'mqtt connected')).toBe(false);
    expect(agent.lines().some((l) => l.msg === 'reconcile' && l.reason === 'poll')).toBe(true);
    // Back on MQTT for the rest.
    await agent.stop();
    ({ agent } = await world.startAgent(dataDir));
    await agent.waitFor('mqtt', (l) => l.msg === 'mqtt connected', 20_000);
  }, 120_000);

  const updateTo = async (
    version: number,
  ): Promise<{ deltaBytes: number; fullBytes: number; gzipBytes: number }> => {
    const before = new Map(world.proxy.served);
    const release = await world.push(images.archive(String(version)), version);
    releases[version] = release;
    // Pushing plans deltas from the release the device runs (it reported running).
    const deltas = await world.deltasSettled(release.id, 1);
    expect(deltas.filter((d) => d.state === 'ready').length).toBeGreaterThanOrEqual(1);
    await world.setTarget(uuid, release.id);
    await world.reported(uuid, 'running', release.id);
    const fetched = [...world.proxy.served]
      .map(([digest, bytes]) => [digest, bytes - (before.get(digest) ?? 0)] as const)
      .filter(([, b]) => b > 0);
    const deltaDigests = new Set(deltas.map((d) => d.digest));
    const gzipDigests = new Set(release.services.flatMap((s) => s.layers.map((l) => l.gzipDigest)));
    const deltaBytes = fetched.filter(([d]) => deltaDigests.has(d)).reduce((a, [, b]) => a + b, 0);
    const fullBytes = fetched.filter(([d]) => gzipDigests.has(d)).reduce((a, [, b]) => a + b, 0);
    const gzipBytes = release.services[0]!.layers[1]!.gzipSize;
    return { deltaBytes, fullBytes, gzipBytes };
  };

  it('updates v1 → v2 by downloading only a delta, far smaller than the gzip layer', async () => {
    const { deltaBytes, fullBytes, gzipBytes } = await updateTo(2);
    expect(fullBytes).toBe(0);
    expect(deltaBytes).toBeGreaterThan(0);
    expect(deltaBytes).toBeLessThan(gzipBytes / 20);
    const { running, all } = await runningReleases(world.engine);
    expect(running).toEqual([releases[2]!.id]);
    expect(all).toBe(1);
    // The engine loaded the image from an archive carrying only the new layer.
    expect(agent!.lines().find((l) => l.msg === 'image loaded' && l.layersSent === 1)).toBeDefined();
  }, 180_000);

  it('updates v2 → v3 by delta too, keeps v2 as the next base and removes v1', async () => {
    const { deltaBytes, fullBytes, gzipBytes } = await updateTo(3);
    expect(fullBytes).toBe(0);
    expect(deltaBytes).toBeLessThan(gzipBytes / 20);
    const managed = await world.engine.managed();
    expect(managed).toHaveLength(1);
    expect(managed[0]?.State).toBe('running');
    expect(managed[0]?.Labels['io.ferry.release']).toBe(releases[3]!.id);
    expect(managed[0]?.ImageID).toBe(releases[3]!.services[0]?.configDigest);
    const ids = (await world.engine.images()).map((i) => i.Id);
    expect(ids).toContain(releases[3]!.services[0]?.configDigest);
    expect(ids).toContain(releases[2]!.services[0]?.configDigest);
    expect(ids).not.toContain(releases[1]!.services[0]?.configDigest);
    const state = agentState(dataDir);
    expect(state.journal?.current?.releaseId).toBe(releases[3]!.id);
    expect(state.journal?.previous?.releaseId).toBe(releases[2]!.id);
    expect(state.journal?.update).toBeNull();
    // The agent's peak RSS over its whole life so far (three updates, one of them by delta rebuild).
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${agent!.child.pid}/status`, 'utf8'));
    process.stdout.write(`agent peak RSS after v1 → v2 → v3: ${(Number(hwm?.[1]) / 1024).toFixed(1)} MiB\n`);
    // 57.3 MiB measured since the MQTT client dropped mqtt.js's write cache (64.0–64.8 with it;
    // 65.2–66.9 without node-flags.json's lite mode and single-threaded GC, 74.6–77.3 before V8's
    // optimizing compiler was turned off and the delta decoder got its own brotli decoder;
    // BENCHMARKS.md, "Agent"): under issue 14's 64 MiB with room for load.
    expect(Number(hwm?.[1]) * 1024).toBeLessThan(62 * 1024 * 1024);
    // Every blob was fetched exactly once.
    for (const [digest, record] of Object.entries(state.ledger?.blobs ?? {}))
      expect([digest, record.fetched]).toEqual([digest, record.done]);
  }, 180_000);

  it('reports progress coalesced to at most one downloading report a second', () => {
    const downloading = agent!.lines().filter((l) => l.msg === 'reported' && l.status === 'downloading');
    const times = downloading.map((l) => Date.parse(String(l.time)));
    for (let i = 1; i < times.length; i++) {
      if (downloading[i]?.releaseId === downloading[i - 1]?.releaseId)
        expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(900);
    }
    const statuses = agent!
      .lines()
      .filter((l) => l.msg === 'reported')
      .map((l) => l.status);
    for (const status of ['downloading', 'downloaded', 'installing', 'starting', 'running'])
      expect(statuses).toContain(status);
  });

  it('POST /v1/device/state takes a report by the same schema as MQTT, for the device key only', async () => {
    const { apiKey } = agentState(dataDir).credentials!;
    const post = (body: unknown, token: string | null) =>
      world.server.api('/v1/device/state', { method: 'POST', json: body, token });
    expect((await post({ status: 'running' }, null)).status).toBe(401);
    expect((await post({ status: 'exploded' }, apiKey)).status).toBe(400);
    expect((await post({ status: 'downloading', bytesDone: 5, bytesTotal: 1 }, apiKey)).status).toBe(400);
    expect((await post({ status: 'running', releaseId: releases[3]!.id }, apiKey)).status).toBe(202);
  });
});
