import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnlineKey, Release } from '@ferry/protocol';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';

/** How long the server's targets are valid (its default: 7 days). */
const EXPIRY_MS = 7 * 24 * 3600 * 1000;

/**
 * The real agent on the private Docker engine against signed targets (docs/security.md "Signed
 * targets"): the proxy between agent and server plays the network attacker (or a malicious mirror)
 * that captures real signed targets and re-delivers them later, or alters them; the agent's clock is
 * moved by a preloaded module (support/agent-clock.cjs) to see a target expire. Every refusal leaves
 * the device on the release it runs and is reported to the server with the reason.
 */
describe('device agent: signed targets that cannot be replayed, frozen, altered or downgraded', () => {
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let dataDir: string;
  const releases: Release[] = [];
  /** A real signed target for v1 (target version 1), captured on its way to the agent. */
  let capturedV1: Record<string, unknown>;
  /** Milliseconds the agent's clock runs ahead of the machine's. */
  let clockFile: string;
  const agentEnv = (): Record<string, string> => ({
    NODE_OPTIONS: `--require ${join(__dirname, 'support', 'agent-clock.cjs')}`,
    FERRY_TEST_CLOCK_FILE: clockFile,
  });

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('targets');
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3 },
    ]);
    dataDir = join(world.work, 'device');
    clockFile = join(world.work, 'agent-clock-offset');
    writeFileSync(clockFile, '0');
  }, 180_000);
  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);
  afterEach(() => {
    world.proxy.rewriteTarget = null;
  });

  const explain = (e: Error): never => {
    throw new Error(`${e.message}\n${agent?.output().slice(-6000)}`);
  };

  const onlineKeys = async (): Promise<OnlineKey[]> =>
    (await (await world.server.api('/v1/target-keys')).json()) as OnlineKey[];

  /**
   * Waits for the agent to refuse a target for `reason`, and for the server to hold that report; then
   * checks the device still runs `running` (its containers, its journal, the server's view).
   */
  const refusedWith = async (reason: string, message: RegExp, running: Release): Promise<void> => {
    const from = agent!.lines().length;
    await until(
      `the agent to refuse a target (${reason})`,
      () =>
        agent!
          .lines()
          .slice(from)
          .find((l) => l.msg === 'target refused' && l.reason === reason),
      60_000,
      200,
    ).catch(explain);
    const device = await until(
      `the refusal (${reason}) reported`,
      async () => {
        const d = await world.device(uuid);
        return d.status === 'failed' && message.test(d.report?.error ?? '') ? d : undefined;
      },
      30_000,
      200,
    );
    expect(device.report?.error).toContain(`target refused (${reason})`);
    expect(device.releaseId).toBe(running.id);
    expect((await runningReleases(world.engine)).running).toEqual([running.id]);
    expect(agentState(dataDir).journal?.current?.releaseId).toBe(running.id);
  };

  it('pins the online key at registration and runs the targets it signs', async () => {
    ({ agent, uuid } = await world.startAgent(dataDir, agentEnv()));
    const [current] = await onlineKeys();
    expect(agentState(dataDir).credentials?.targetKey).toBe(current?.publicKey);
    releases[1] = await world.push(images.archive('1'), 1);
    releases[2] = await world.push(images.archive('2'), 2);
    world.proxy.rewriteTarget = (target) => {
      if ((target.release as { id?: string } | null)?.id === releases[1]!.id) capturedV1 = target;
      return target;
    };
    await world.setTarget(uuid, releases[1].id);
    await world.reported(uuid, 'running', releases[1].id).catch(explain);
    world.proxy.rewriteTarget = null;
    expect(capturedV1).toMatchObject({ uuid, targetVersion: 1, rollback: false });
    await world.setTarget(uuid, releases[2].id);
    await world.reported(uuid, 'running', releases[2].id).catch(explain);
    expect(agentState(dataDir).journal?.highest).toEqual({ targetVersion: 2, releaseVersion: 2 });
  }, 240_000);

  it('refuses a replayed target: a real signed one, captured earlier, with a lower version', async () => {
    world.proxy.rewriteTarget = () => capturedV1;
    await world.setTarget(uuid, releases[2]!.id);
    await refusedWith('replay', /target version 1 is lower than 2/, releases[2]!);
    world.proxy.rewriteTarget = null;
    await world.reported(uuid, 'running', releases[2]!.id).catch(explain);
  }, 120_000);

  it('refuses a target altered after signing (the release swapped, marked a rollback)', async () => {
    world.proxy.rewriteTarget = (target) => ({ ...target, release: capturedV1.release, rollback: true });
    await world.setTarget(uuid, releases[2]!.id);
    await refusedWith('signature', /not signed by the server's online key/, releases[2]!);
  }, 120_000);

  it('refuses an expired target: the last one held back while the device clock passes its expiry (a freeze)', async () => {
    let held: Record<string, unknown> | undefined;
    world.proxy.rewriteTarget = (target) => (held ??= target);
    await world.setTarget(uuid, releases[2]!.id);
    const target = await until('a target captured', () => held, 60_000, 200);
    const expires = Date.parse(target.expires as string);
    expect(Math.abs(expires - (Date.now() + EXPIRY_MS))).toBeLessThan(120_000);
    // Seven days and a minute later for the device; the held-back target is all it gets.
    writeFileSync(clockFile, String(expires - Date.now() + 60_000));
    try {
      await world.setTarget(uuid, releases[2]!.id);
      await refusedWith('expired', /target expired at/, releases[2]!);
    } finally {
      writeFileSync(clockFile, '0');
    }
    world.proxy.rewriteTarget = null;
    await world.reported(uuid, 'running', releases[2]!.id).catch(explain);
  }, 120_000);

  it('refuses an older release the operator did not ask for as a rollback, and runs the rollback asked for', async () => {
    await world.setTarget(uuid, releases[1]!.id);
    await refusedWith('downgrade', /release v1 is older than v2/, releases[2]!);
    await world.setTarget(uuid, releases[1]!.id, true);
    await world.reported(uuid, 'running', releases[1]!.id).catch(explain);
    expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
    // The highest release run stays 2: the next release older than v2 needs a rollback mark too.
    expect(agentState(dataDir).journal?.highest?.releaseVersion).toBe(2);
  }, 180_000);

  it('keeps the versions it holds across a restart: the captured target is still a replay', async () => {
    await agent!.stop();
    world.proxy.rewriteTarget = () => capturedV1;
    ({ agent } = await world.startAgent(dataDir, agentEnv()));
    // The captured v1 target names the release the device runs now: only its version gives it away.
    await refusedWith('replay', /target version 1 is lower than/, releases[1]!);
    world.proxy.rewriteTarget = null;
    await world.reported(uuid, 'running', releases[1]!.id).catch(explain);
  }, 120_000);

  it('follows a rotation of the online key, which the old key vouched for', async () => {
    const before = agentState(dataDir).credentials?.targetKey;
    const rotated = (await (
      await world.server.api('/v1/target-keys/rotate', { method: 'POST' })
    ).json()) as OnlineKey;
    expect(rotated.publicKey).not.toBe(before);
    await world.setTarget(uuid, releases[2]!.id);
    await world.reported(uuid, 'running', releases[2]!.id).catch(explain);
    await until('the new online key pinned', () =>
      agentState(dataDir).credentials?.targetKey === rotated.publicKey ? true : undefined,
    );
    // The old key co-signs until the next rotation, for devices that have not fetched a target since.
    const roles = (await onlineKeys()).map((k) => [k.publicKey === rotated.publicKey, k.role]);
    expect(roles).toEqual([
      [true, 'current'],
      [false, 'previous'],
    ]);
  }, 180_000);

  it('asks again for a target planned against an image removed while the answer was on its way, and fetches the delta, not the whole layer', async () => {
    const v1 = releases[1]!;
    const [delta] = await world
      .requestDeltas(v1.id, releases[2]!.id)
      .then(() => world.deltasSettled(v1.id, 1));
    expect(delta).toMatchObject({ state: 'ready' });
    const appLayer = v1.services[0]!.layers.at(-1)!;
    const gzipBefore = world.proxy.served.get(appLayer.gzipDigest) ?? 0;
    let removed = false;
    // The device read its layers (v1's image among them, kept as the previous release) before asking;
    // the image goes before the answer arrives, so that answer counts v1's app layer as held.
    world.proxy.rewriteTarget = async (target) => {
      if (!removed && (target.release as { id?: string } | null)?.id === v1.id) {
        await world.engine.api('DELETE', `/images/${v1.services[0]!.configDigest}?force=1`);
        removed = true;
      }
      return target;
    };
    const from = agent!.lines().length;
    await world.setTarget(uuid, v1.id, true);
    await world.reported(uuid, 'running', v1.id).catch(explain);
    expect(removed).toBe(true);
    const lines = agent!.lines().slice(from);
    expect(lines.filter((l) => l.msg === 'download.fallback')).toEqual([]);
    expect(world.proxy.served.get(delta!.digest!)).toBe(delta!.size);
    expect(world.proxy.served.get(appLayer.gzipDigest) ?? 0).toBe(gzipBefore);
    expect((await runningReleases(world.engine)).running).toEqual([v1.id]);
    expect(lines.filter((l) => /no longer holds/.test(String(l.msg)))).toHaveLength(1);
  }, 180_000);
});
