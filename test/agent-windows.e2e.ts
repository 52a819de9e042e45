import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAINTENANCE_WAIT, Release } from '@ferry/protocol';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';
import { AgentProcess, buildAgentBundle } from './support/agent-process';
import { windowAhead } from './support/window-ahead';

/**
 * The real agent on the private Docker engine under an update policy (docs/rollouts.md "Maintenance
 * windows and metered links"): it downloads at once but no faster than the fleet's rate cap, keeps
 * the old release running while its maintenance window is shut (reporting that it waits, and when the
 * window opens), and installs once its clock — moved by a preloaded module — is inside the window.
 * Once running, it reports a service's crash (restart count) without waiting for a reconciliation.
 */
describe('device agent: download now at the capped rate, install in the maintenance window', () => {
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let clockFile: string;
  const releases: Release[] = [];

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('windows');
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3 },
    ]);
    clockFile = join(world.work, 'agent-clock-offset');
    writeFileSync(clockFile, '0');
    ({ agent, uuid } = await world.startAgent(join(world.work, 'device'), {
      NODE_OPTIONS: `--require ${join(__dirname, 'support', 'agent-clock.cjs')}`,
      FERRY_TEST_CLOCK_FILE: clockFile,
      FERRY_WINDOW_RECHECK_MS: '300',
      FERRY_SERVICE_REPORT_MS: '500',
    }));
    releases[1] = await world.push(images.archive('1'), 1);
    await world.setTarget(uuid, releases[1].id);
    await world.reported(uuid, 'running', releases[1].id);
  }, 240_000);
  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('downloads v2 at no more than the cap, waits for the window with v1 running, then installs v2', async () => {
    releases[2] = await world.push(images.archive('2'), 2);
    const [delta] = await world.deltasSettled(releases[2].id, 1);
    expect(delta?.state).toBe('ready');
    // A cap that makes the delta take about 4 s (the first second is a burst the bucket allows).
    const rate = Math.max(1000, Math.ceil(delta!.size! / 4));
    const window = windowAhead(3);
    const set = await world.server.api(`/v1/fleets/${world.fleet.slug}/update-policy`, {
      method: 'PUT',
      json: { maintenanceWindows: [window.text], downloadRate: rate },
    });
    expect(set.status).toBe(200);

    const started = Date.now();
    const servedBefore = world.proxy.served.get(delta!.digest!) ?? 0;
    await world.setTarget(uuid, releases[2].id);
    const waiting = await world.reported(uuid, 'deferred', releases[2].id, 60_000);
    const downloadSeconds = (Date.now() - started) / 1000;
    expect(waiting.report?.error).toBe(
      `${MAINTENANCE_WAIT} (opens ${new Date(window.opensAt).toISOString()})`,
    );
    // Downloaded whole, and no faster than the cap allows after its one-second burst.
    expect((world.proxy.served.get(delta!.digest!) ?? 0) - servedBefore).toBe(delta!.size);
    expect(downloadSeconds).toBeGreaterThanOrEqual(delta!.size! / rate - 1);
    // The window is shut: v1 keeps running, and stays so.
    await new Promise((r) => setTimeout(r, 2000));
    expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
    expect((await world.device(uuid)).status).toBe('deferred');

    // The device's clock reaches the window: it installs v2 without downloading anything again.
    writeFileSync(clockFile, String(window.opensAt + 60_000 - Date.now()));
    await world.reported(uuid, 'running', releases[2].id, 60_000);
    expect((await runningReleases(world.engine)).running).toEqual([releases[2].id]);
    expect((world.proxy.served.get(delta!.digest!) ?? 0) - servedBefore).toBe(delta!.size);
    expect(agent!.lines().some((l) => l.msg === 'update waits for its window')).toBe(true);
  }, 120_000);

  it('reports a crash of a running service between reconciliations (its restart count)', async () => {
    const [container] = await world.engine.managed();
    const inspect = await world.engine.api<{ State: { Pid: number }; RestartCount: number }>(
      'GET',
      `/containers/${container!.Id}/json`,
    );
    expect(inspect.body.RestartCount).toBe(0);
    const restarts = async (): Promise<number> =>
      (await world.device(uuid)).services?.find((s) => s.name === 'app')?.restartCount ?? -1;
    // The running release's services are reported without a reconciliation.
    for (let i = 0; i < 40 && (await restarts()) !== 0; i += 1) await new Promise((r) => setTimeout(r, 200));
    expect(await restarts()).toBe(0);
    // The app dies (killed from the host, as a crash): the engine restarts it (unless-stopped).
    process.kill(inspect.body.State.Pid, 'SIGKILL');
    const killedAt = Date.now();
    const deadline = killedAt + 8000;
    while ((await restarts()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // Well before the next poll (18 s with MQTT up) and with no notice: the periodic read reported it.
    expect(await restarts()).toBe(1);
    expect((await world.device(uuid)).status).toBe('running');
  }, 60_000);
});
