import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Release } from '@ferry/protocol';
import { buildAgentImages } from './support/agent-images';
import { AgentProcess, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, startAgentWorld } from './support/agent-harness';

/** The app: one service per update strategy, and one that joins another's network namespace. */
const composeOf = (image: string): string => `
services:
  killed:
    image: ${image}
    labels: { io.ferry.update.strategy: kill-then-download }
  deleted:
    image: ${image}
    labels: { io.ferry.update.strategy: delete-then-download }
  handed:
    image: ${image}
    command: ["sh", "-c", "sleep 4; echo ready > /app/ready; exec sleep 3600"]
    healthcheck: { test: ["CMD", "cat", "/app/ready"], interval: 1s, retries: 60 }
    labels: { io.ferry.update.strategy: hand-over, io.ferry.update.handover-timeout: "60000" }
  joined:
    image: ${image}
    network_mode: "service:killed"
`;

interface EngineEvent {
  Type: string;
  Action: string;
  id: string;
  timeNano: number;
}

/**
 * Update strategies and `network_mode: service:X` on the private Docker engine, with the bundled agent:
 * while the new layer is still downloading (a throttled link), the kill-then-download service's old
 * container is stopped and the delete-then-download one's is gone, the hand-over one still runs; during
 * the swap the hand-over service runs old and new side by side, and the old stops only after the new
 * reports healthy (engine events); the joined service shares the network namespace of the container it
 * names, before and after that container is replaced.
 */
describe('compose update strategies on a real engine', () => {
  let world: AgentWorld;
  let agent: AgentProcess | undefined;
  let uuid: string;
  const releases: Release[] = [];

  const explain = (e: Error): never => {
    throw new Error(`${e.message}\n${agent?.output().slice(-6000) ?? ''}`);
  };
  const byService = async (): Promise<Record<string, { Id: string; State: string }[]>> => {
    const out: Record<string, { Id: string; State: string }[]> = {};
    for (const c of await world.engine.managed()) (out[c.Labels['io.ferry.service'] ?? '?'] ??= []).push(c);
    return out;
  };
  const inspect = async (id: string) =>
    world.engine.api<{ State: { Running: boolean; Pid: number }; HostConfig: { NetworkMode: string } }>(
      'GET',
      `/containers/${id}/json`,
    );
  const netns = async (id: string): Promise<string> =>
    readlinkSync(`/proc/${(await inspect(id)).body.State.Pid}/ns/net`);
  const events = (sinceS: number): EngineEvent[] =>
    execFileSync(
      'curl',
      [
        '-sf',
        '--unix-socket',
        world.engine.socket,
        `http://engine/v1.41/events?since=${sinceS}&until=${Math.ceil(Date.now() / 1000) + 1}`,
      ],
      { encoding: 'utf8' },
    )
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as EngineEvent)
      .filter((e) => e.Type === 'container');

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('strategies');
    const images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 40 },
    ]);
    releases[1] = await world.pushCompose(composeOf('app:1'), [images.archive('1')], 1);
    releases[2] = await world.pushCompose(composeOf('app:2'), [images.archive('2')], 2);
  }, 300_000);
  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('v1: the joined service runs in the network namespace of the service it names', async () => {
    ({ agent, uuid } = await world.startAgent(join(world.work, 'device')));
    await world.setTarget(uuid, releases[1]!.id);
    await world.reported(uuid, 'running', releases[1]!.id, 120_000).catch(explain);
    const running = await byService();
    const killed = running.killed![0]!.Id;
    const joined = running.joined![0]!.Id;
    expect((await inspect(joined)).body.HostConfig.NetworkMode).toBe(`container:${killed}`);
    expect(await netns(joined)).toBe(await netns(killed));
    expect(await netns(joined)).not.toBe(await netns(running.deleted![0]!.Id));
  }, 180_000);

  it('v2: kill-then-download stops and delete-then-download removes before the download; hand-over runs both until the new one is healthy', async () => {
    const before = await byService();
    const old = Object.fromEntries(Object.entries(before).map(([s, cs]) => [s, cs[0]!.Id]));
    const layer = releases[2]!.services.find((s) => s.name === 'killed')!.layers[1]!;
    const startedS = Math.floor(Date.now() / 1000) - 1;
    let handedAtOnce = 0;
    const sampler = setInterval(() => {
      void byService().then(
        (now) => {
          const runningHanded = (now.handed ?? []).filter((c) => c.State === 'running').length;
          handedAtOnce = Math.max(handedAtOnce, runningHanded);
        },
        () => undefined,
      );
    }, 100);
    world.proxy.throttle = 4096;
    try {
      await world.setTarget(uuid, releases[2]!.id);
      await until(
        'the new layer to be downloading',
        () => ((world.proxy.served.get(layer.gzipDigest) ?? 0) > 0 ? true : undefined),
        120_000,
      );
      // Mid-download: the old containers as each strategy leaves them.
      expect((await inspect(old.killed!)).body.State.Running).toBe(false);
      expect((await inspect(old.deleted!)).status).toBe(404);
      expect((await inspect(old.handed!)).body.State.Running).toBe(true);
      expect(world.proxy.served.get(layer.gzipDigest)).toBeLessThan(layer.gzipSize);
    } finally {
      world.proxy.throttle = 0;
    }
    await world.reported(uuid, 'running', releases[2]!.id, 180_000).catch(explain);
    clearInterval(sampler);
    const after = await byService();
    for (const service of ['killed', 'deleted', 'handed', 'joined']) {
      expect(after[service]?.map((c) => c.State)).toEqual(['running']);
      expect(after[service]![0]!.Id).not.toBe(old[service]);
      expect((await inspect(old[service]!)).status).toBe(404);
    }
    // hand-over: old and new ran side by side; the old died only after the new reported healthy.
    expect(handedAtOnce).toBe(2);
    const seen = events(startedS);
    const at = (id: string, action: string): number | undefined =>
      seen.find((e) => e.id === id && e.Action === action)?.timeNano;
    const healthy = at(after.handed![0]!.Id, 'health_status: healthy');
    const oldDied = at(old.handed!, 'die');
    expect(healthy).toBeDefined();
    expect(oldDied).toBeGreaterThan(healthy!);
    expect(at(after.handed![0]!.Id, 'start')).toBeLessThan(oldDied!);
    // kill-then-download: the old container died before the new one was even created.
    expect(at(old.killed!, 'die')).toBeLessThan(at(after.killed![0]!.Id, 'create')!);
    expect(at(old.deleted!, 'destroy')).toBeLessThan(at(after.deleted![0]!.Id, 'create')!);
    // The joined service followed the container it names into the new one's namespace.
    expect((await inspect(after.joined![0]!.Id)).body.HostConfig.NetworkMode).toBe(
      `container:${after.killed![0]!.Id}`,
    );
    expect(await netns(after.joined![0]!.Id)).toBe(await netns(after.killed![0]!.Id));
  }, 300_000);
});
