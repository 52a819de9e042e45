import { join } from 'node:path';
import { Release } from '@ferry/protocol';
import { buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, startAgentWorld } from './support/agent-harness';

/** Running managed containers by service. */
async function runningPerService(world: AgentWorld): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const c of await world.engine.managed())
    if (c.State === 'running') (out[c.Labels['io.ferry.service'] ?? '?'] ??= []).push(c.Id);
  return out;
}

const CYCLES = Number(process.env.FERRY_CRASH_CYCLES ?? 15);
const KILLS_PER_CYCLE = 2;

/** The compose app of the crash loop: `app` changes every release, `sidecar` never does. */
const composeOf = (appImage: string): string => `
services:
  app:
    image: ${appImage}
    environment: { ROLE: app }
    volumes: ["state:/state"]
    restart: unless-stopped
  sidecar:
    image: app:s
    command: ["/app/run.sh"]
    environment: { ROLE: sidecar }
    depends_on: [app]
volumes:
  state:
`;

/**
 * Power cuts: the bundled agent is SIGKILLed at random instants while it downloads (throttled),
 * rebuilds, loads and swaps a compose app, and restarted. Between kills and after every restart the
 * engine never runs two containers of one service; after each update converges the changed service
 * runs the target release, the unchanged one is the very same container as before the first kill,
 * the app's volume exists, and the persisted downloaded-bytes counter shows that no finished byte was
 * fetched twice.
 */
describe('device agent: killed at random instants', () => {
  let world: AgentWorld;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let dataDir: string;
  const releases: Release[] = [];
  let sampler: NodeJS.Timeout | undefined;
  const violations: string[] = [];

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('crash');
    const images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3000 },
      { name: 's', edits: 1 },
    ]);
    releases[0] = await world.pushCompose(composeOf('app:1'), [images.archive('1'), images.archive('s')], 1);
    releases[1] = await world.pushCompose(composeOf('app:2'), [images.archive('2'), images.archive('s')], 2);
    await world.requestDeltas(releases[1].id, releases[0].id);
    await world.requestDeltas(releases[0].id, releases[1].id);
    await world.deltasSettled(releases[1].id, 1);
    await world.deltasSettled(releases[0].id, 1);
    dataDir = join(world.work, 'device');
    // Watch the engine the whole time: never two containers of one service running at once.
    sampler = setInterval(() => {
      void runningPerService(world).then(
        (perService) => {
          for (const [service, ids] of Object.entries(perService))
            if (ids.length > 1)
              violations.push(`${new Date().toISOString()} ${service} runs ${ids.join(', ')}`);
        },
        () => undefined,
      );
    }, 100);
  }, 240_000);
  afterAll(async () => {
    if (sampler) clearInterval(sampler);
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it(`converges to one release after ${CYCLES * KILLS_PER_CYCLE} SIGKILLs, never fetching a finished byte twice`, async () => {
    const explain = (e: Error): never => {
      throw new Error(`${e.message}\n${agent?.output().slice(-5000) ?? ''}`);
    };
    ({ agent, uuid } = await world.startAgent(dataDir));
    await world.setTarget(uuid, releases[0]!.id);
    await world.reported(uuid, 'running', releases[0]!.id).catch(explain);
    const sidecar = (await runningPerService(world)).sidecar;
    expect(sidecar).toHaveLength(1);
    world.proxy.throttle = 8 * 1024;
    const phases: Record<string, number> = {};
    let kills = 0;
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      const target = releases[cycle % 2]!;
      const other = releases[(cycle + 1) % 2]!;
      // Only the running image stays, so every update rebuilds its new layer from a delta.
      await world.engine.api('DELETE', `/images/${target.services[0]!.configDigest}?force=1`);
      const before = agentState(dataDir).ledger ?? { totalFetched: 0, blobs: {} };
      // Back to v1 every other cycle: an operator's rollback, which the agent accepts only when marked.
      await world.setTarget(uuid, target.id, target.version < other.version);
      for (let k = 0; k < KILLS_PER_CYCLE; k++) {
        await new Promise((r) => setTimeout(r, Math.random() * 3500));
        agent.child.kill('SIGKILL');
        await agent.exited;
        kills++;
        const phase = agentState(dataDir).journal?.update?.phase ?? 'none';
        phases[phase] = (phases[phase] ?? 0) + 1;
        for (const ids of Object.values(await runningPerService(world)))
          expect(ids.length).toBeLessThanOrEqual(1);
        ({ agent } = await world.startAgent(dataDir));
      }
      await world.reported(uuid, 'running', target.id, 90_000).catch(explain);
      await until(
        'journal to settle',
        () => (agentState(dataDir).journal?.update === null ? true : undefined),
        30_000,
      );
      const managed = await world.engine.managed();
      const apps = managed
        .filter((c) => c.Labels['io.ferry.service'] === 'app')
        .map((c) => [c.State, c.Labels['io.ferry.release']]);
      if (JSON.stringify(apps) !== JSON.stringify([['running', target.id]]))
        explain(
          new Error(
            `cycle ${cycle}: app containers ${JSON.stringify(apps)}, not one running ${target.id}\n` +
              JSON.stringify(managed.map((c) => [c.Names, c.State, c.Labels])),
          ),
        );
      // The unchanged service was never recreated nor restarted by any update, kill or undo.
      expect((await runningPerService(world)).sidecar).toEqual(sidecar);
      expect(managed).toHaveLength(2);
      const volumes = (await world.engine.api<{ Volumes: { Name: string }[] }>('GET', '/volumes')).body
        .Volumes;
      expect(volumes.map((v) => v.Name)).toContain(`${world.fleet.slug}_state`);
      const after = agentState(dataDir).ledger!;
      for (const [digest, record] of Object.entries(after.blobs)) {
        const added = record.fetched - (before.blobs[digest]?.fetched ?? 0);
        if (added > 0) expect({ digest, added }).toEqual({ digest, added: record.done });
      }
      expect(after.totalFetched - before.totalFetched).toBe(
        Object.entries(after.blobs).reduce(
          (sum, [d, r]) => sum + (r.fetched > (before.blobs[d]?.fetched ?? 0) ? r.done : 0),
          0,
        ),
      );
      // The target's image is loaded, the other one stays as the next delta base.
      const ids = (await world.engine.images()).map((i) => i.Id);
      expect(ids).toContain(target.services[0]!.configDigest);
      expect(ids).toContain(other.services[0]!.configDigest);
    }
    expect(violations).toEqual([]);
    expect(kills).toBeGreaterThanOrEqual(30);
    // The kills landed across the update, not only before or after it.
    process.stdout.write(`agent crash loop: ${kills} kills by journal phase ${JSON.stringify(phases)}\n`);
    expect(Object.keys(phases).filter((p) => p !== 'none').length).toBeGreaterThanOrEqual(2);
    const resumed = world.proxy.requests.filter((r) => r.range !== null).length;
    const deltaSizes = (await world.deltasSettled(releases[1]!.id, 1)).map((d) => d.size);
    process.stdout.write(
      `agent crash loop: ${resumed} blob requests resumed with Range; delta sizes ${deltaSizes.join(', ')}\n`,
    );
    // Kills during downloads left partial files that were resumed, not fetched again.
    expect(resumed).toBeGreaterThanOrEqual(1);
  }, 900_000);
});
