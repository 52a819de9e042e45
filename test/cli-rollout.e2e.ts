import type { Device, Release, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { buildCli, ferry, ferryOnTerminal, type FerryRun } from './support/cli';
import { TestFleet, createFleet, pushRelease } from './support/mqtt-devices';
import { ServerPlace, json, layersOf, newPlace, startServerAt, until } from './support/simulator-harness';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS } from './support/test-server';

const ESC = String.fromCharCode(27);

/**
 * `ferry rollout …` driving the real rollout engine with simulated devices (real MQTT, real device
 * API), the CLI run as a subprocess with the server's URL and token in its environment.
 */
describe.each(DATABASE_KINDS)('ferry rollout with simulated devices (%s)', (kind) => {
  let place: ServerPlace;
  let server: TestServer & { remove: () => Promise<void> };
  let fleet: TestFleet;
  let v1: Release;
  let simulator: Simulator;
  /** Releases the simulated devices fail to install. */
  const failing = new Set<string>();
  /** Releases the simulated devices start downloading and then go silent on. */
  const hanging = new Set<string>();
  const run = (args: string[]): Promise<FerryRun> =>
    ferry(args, { env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN }, timeoutMs: 90_000 });

  beforeAll(async () => {
    place = await newPlace({}, kind);
    [server] = await Promise.all([startServerAt(place), buildCli()]);
    fleet = await createFleet(server, 'Rollout CLI');
    v1 = await pushRelease(server, fleet, 'rollout cli v1');
    simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: 6,
      stepMs: 30,
      running: { id: v1.id, layers: layersOf(v1) },
      behaviour: (_index, releaseId) =>
        failing.has(releaseId) ? 'fail' : hanging.has(releaseId) ? 'hang' : 'ok',
    });
    await until(
      async () => {
        const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
        return devices.length === 6 && devices.every((d) => d.releaseId === v1.id) ? true : undefined;
      },
      20_000,
      '6 simulated devices running v1',
    );
    await pushRelease(server, fleet, 'rollout cli v2');
  }, 180_000);
  afterAll(async () => {
    await simulator?.stop();
    await server?.close();
    await server?.remove();
  });

  it('prints the plan of a dry run without starting anything', async () => {
    const dry = await run([
      'rollout',
      'start',
      fleet.slug,
      'v2',
      ...'--batches 1,50% --bake 500ms --dry-run'.split(' '),
    ]);
    expect(dry).toMatchObject({ code: 0, stderr: '' });
    expect(dry.stdout).toMatch(/^rollout plan: release v2 to fleet rollout-cli$/m);
    expect(dry.stdout).toMatch(/^devices: +6 \(6 online\)$/m);
    expect(dry.stdout).toMatch(/^batches: +1 \+ 2 \+ 3$/m);
    expect(dry.stdout).toMatch(/^download: +[\d.]+ \S+ projected, [\d.]+ \S+ as full layers/m);
    expect(dry.stdout).toMatch(
      /^strategy: +batches 1,50%; bake 0.5s; max failures 20% then pause; rollback failed/m,
    );
    expect(dry.stdout).toMatch(/^BATCH\s+DEVICE\s+NAME\s+ONLINE\s+PROJECTED\s+FULL$/m);
    expect(await json<RolloutView[]>(await server.api(`/v1/fleets/${fleet.slug}/rollouts`))).toEqual([]);
  });

  it('will not start without --yes when nobody can be asked', async () => {
    const refused = await run(['rollout', 'start', fleet.slug, 'v2']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('not confirmed (stdin is not a terminal; pass --yes)');
    expect(await json<RolloutView[]>(await server.api(`/v1/fleets/${fleet.slug}/rollouts`))).toEqual([]);
  });

  it('starts a rollout and watches it to completion (exit 0), then lists it', async () => {
    const started = await run([
      'rollout',
      'start',
      fleet.slug,
      'v2',
      // Bakes long enough that the watch below, a new CLI process, starts before the last batch ends
      // even on a loaded machine (with 1 s it once started after the rollout had completed).
      ...'--batches 1,50% --bake 5s --yes --json'.split(' '),
    ]);
    const rollout = JSON.parse(started.stdout) as RolloutView;
    expect(started.code).toBe(0);
    expect(rollout).toMatchObject({ state: 'running', total: 6, releaseVersion: 2 });

    const watched = await run(['rollout', 'status', rollout.id, '--watch']);
    expect(watched).toMatchObject({ code: 0, stderr: '' });
    // A pipe gets one timestamped line per change, then the full status.
    const lines = watched.stdout.split('\n');
    expect(
      lines.filter((l) => /^\S+ \S+ {2}running batch [123]\/3 (running|baking): /.test(l)).length,
    ).toBeGreaterThan(1);
    expect(lines).toContainEqual(
      expect.stringMatching(/^\S+ \S+ {2}completed batch 3\/3 passed: succeeded 6; /),
    );
    expect(watched.stdout).toMatch(
      new RegExp(`^rollout ${rollout.id}: release v2 to fleet rollout-cli: completed`, 'm'),
    );
    expect(watched.stdout).toMatch(/^devices: +6: succeeded 6$/m);
    expect(watched.stdout).toMatch(/^1 +passed +\[█{20}\] +1\/1 +0% +succeeded 1$/m);
    expect(watched.stdout).toMatch(/^3 +passed +\[█{20}\] +3\/3 +0% +succeeded 3$/m);

    const status = JSON.parse((await run(['rollout', 'status', rollout.id, '--json'])).stdout) as RolloutView;
    expect(status).toMatchObject({ state: 'completed', counts: { succeeded: 6 } });
    const listed = await run(['rollouts', fleet.slug]);
    expect(listed.stdout).toMatch(/^ID\s+RELEASE\s+STATE\s+BATCH\s+DEVICES\s+FAILED\s+CREATED\s+REASON$/m);
    expect(listed.stdout).toMatch(
      new RegExp(`^${rollout.id}\\s+v2\\s+completed\\s+\\d/3\\s+6/6 ok\\s+0\\s`, 'm'),
    );
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    expect(devices.every((d) => d.releaseId === rollout.releaseId)).toBe(true);
  });

  it('a watched rollout that pauses on failures exits 6; resume and abort work, a refused change is exit 3', async () => {
    const v3 = await pushRelease(server, fleet, 'rollout cli v3');
    failing.add(v3.id);
    const started = await run([
      'rollout',
      'start',
      fleet.slug,
      v3.id,
      ...'--batches 2,100% --bake 0 --max-failures 10% --no-rollback --yes --watch --json'.split(' '),
    ]);
    expect(started.code).toBe(6);
    const views = started.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as RolloutView);
    const last = views[views.length - 1]!;
    expect(last.state).toBe('paused');
    expect(last.reason).toMatch(/batch 1 failed/);
    expect(last.strategy).toMatchObject({ rollback: 'none', maxFailurePercent: 10, bakeSeconds: 0 });
    expect(views.length).toBeGreaterThan(1);

    const text = await run(['rollout', 'status', last.id]);
    expect(text.stdout).toMatch(/^failures \(2\):$/m);
    expect(text.stdout).toMatch(/batch 1: failed — .*simulated failure/);
    expect(text.stdout).toMatch(/^1 +failed +\[█{20}\] +2\/2 +100%/m);

    expect((await run(['rollout', 'pause', last.id])).code).toBe(3);
    const aborted = await run(['rollout', 'abort', last.id]);
    expect(aborted).toMatchObject({ code: 0, stderr: '' });
    expect(aborted.stdout).toMatch(new RegExp(`^rollout ${last.id}: aborted`));
    const resumed = await run(['rollout', 'resume', last.id]);
    expect(resumed.code).toBe(3);
    expect(resumed.stderr).toMatch(/^ferry rollout resume: 409 Conflict: /);
    const watchedAborted = await run(['rollout', 'status', last.id, '--watch']);
    expect(watchedAborted.code).toBe(6);
    const listed = JSON.parse(
      (await run(['rollouts', fleet.slug, '--state', 'aborted', '--json'])).stdout,
    ) as RolloutView[];
    expect(listed.map((r) => r.id)).toEqual([last.id]);
  });

  it('on a terminal, starts after the plan and redraws the status in place until it completes', async () => {
    await pushRelease(server, fleet, 'rollout cli v4');
    const result = await ferryOnTerminal(
      ['rollout', 'start', fleet.slug, 'v4', '--batches', '3,100%', '--bake', '1s', '--yes', '--watch'],
      { env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN }, timeoutMs: 90_000 },
    );
    expect(result.code).toBe(0);
    expect(result.output).toMatch(/^rollout plan: release v4 to fleet rollout-cli$/m);
    expect(result.output).toMatch(/^started rollout [0-9a-f-]{36} \(running\)/m);
    // Each new frame moves the cursor up over the last one and clears to the end of the screen.
    const redraw = new RegExp(`${ESC}\\[\\d+A\\r${ESC}\\[0J`);
    const frames = result.output.split(redraw);
    expect(frames.length).toBeGreaterThan(2);
    const last = frames[frames.length - 1]!;
    expect(last).toMatch(/^rollout [0-9a-f-]{36}: release v4 to fleet rollout-cli: completed/);
    expect(last).toMatch(/^2 +passed +\[█{20}\] +3\/3 +0% +succeeded 3$/m);
  });

  it('takes every strategy flag; refuses a second rollout before any plan, saying what the active one does', async () => {
    const v5 = await pushRelease(server, fleet, 'rollout cli v5');
    hanging.add(v5.id);
    const started = await run([
      'rollout',
      'start',
      fleet.slug,
      `v${v5.version}`,
      ...'--batches 1,100% --bake 0 --device-timeout 1h --wait-for-deltas 1s --max-per-minute 100 --yes --json'.split(
        ' ',
      ),
    ]);
    expect(started.code).toBe(0);
    const rollout = JSON.parse(started.stdout) as RolloutView;
    expect(rollout.strategy).toMatchObject({
      deviceTimeoutSeconds: 3600,
      waitForDeltasSeconds: 1,
      maxDevicesPerMinute: 100,
    });

    const again = await run(['rollout', 'start', fleet.slug, `v${v5.version}`, '--yes']);
    expect(again.code).toBe(3);
    expect(again.stdout).toBe('');
    expect(again.stderr).toContain(
      `409 Conflict: rollout ${rollout.id} of v${v5.version} is running: wait for it (ferry rollout status ${rollout.id} --watch) or abort it`,
    );

    // A unique start of the id is enough, as with git and kubectl.
    const prefix = rollout.id.slice(0, 8);
    const paused = await run(['rollout', 'pause', prefix]);
    expect(paused).toMatchObject({
      code: 0,
      stdout: `rollout ${rollout.id}: paused — paused by an operator\n`,
    });
    const whilePaused = await run(['rollout', 'start', fleet.slug, `v${v5.version}`, '--yes']);
    expect(whilePaused.stderr).toMatch(
      new RegExp(
        `rollout ${rollout.id} of v${v5.version} is paused.*: resume it \\(ferry rollout resume ${rollout.id}\\) or abort it`,
      ),
    );
    expect(whilePaused.stdout).toBe('');
    // The server says the same to the API, truthfully.
    const refused = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
      method: 'POST',
      json: { releaseId: v5.id },
    });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { message: string }).message).toBe(
      `rollout ${rollout.id} of this fleet is paused: resume or abort it first`,
    );
    expect((await run(['rollout', 'resume', prefix])).code).toBe(0);
    expect((await run(['rollout', 'status', rollout.id.slice(0, 3)])).code).toBe(3);
  });

  it('a watch that waits on a hanging device says so on every heartbeat, not silence', async () => {
    const [active] = await json<RolloutView[]>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts?state=running`),
    );
    expect(active).toBeDefined();
    await until(
      async () => {
        const devices = await json<{ state: string }[]>(
          await server.api(`/v1/rollouts/${active!.id}/devices`),
        );
        return devices.some((d) => d.state === 'updating' || d.state === 'notified') ? true : undefined;
      },
      20_000,
      'the batch-1 device told about v5',
    );
    const watching = ferry(['rollout', 'status', active!.id.slice(0, 8), '--watch'], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN, FERRY_WATCH_HEARTBEAT_SECONDS: '1' },
      timeoutMs: 60_000,
    });
    // Long enough for the CLI to start on a loaded machine and beat a few times (1 s heartbeats).
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    await server.api(`/v1/rollouts/${active!.id}/abort`, { method: 'POST' });
    const watched = await watching;
    expect(watched.code).toBe(6);
    const heartbeats = watched.stdout
      .split('\n')
      .filter((l) => / {2}batch 1\/2: waiting on 1 device \(\S+\); it times out at \d\d:\d\d:\d\d$/.test(l));
    if (heartbeats.length < 2) throw new Error(`fewer than 2 heartbeat lines in:\n${watched.stdout}`);
  });

  it('an unknown rollout is exit 3, an unknown release version exit 1', async () => {
    expect(await run(['rollout', 'status', 'nope'])).toMatchObject({ code: 3 });
    const unknown = await run(['rollout', 'start', fleet.slug, 'v99', '--yes']);
    expect(unknown).toMatchObject({
      code: 1,
      stderr: `ferry rollout start: fleet ${fleet.slug} has no release v99 (ferry releases ${fleet.slug})\n`,
    });
  });
});
