import { ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Device, Fleet, Release, RolloutView, VariableList } from '@ferry/protocol';
import { ROOT, buildCli } from './support/cli';
import { DockerEngine, startDockerEngine } from './support/docker-engine';
import { buildImageFixtures } from './support/image-fixtures';
import { freePort } from './support/simulator-harness';
import { ADMIN_TOKEN, TestServer, startTestServer } from './support/test-server';
import { WorkerProcess, startWorker } from './support/worker-process';

/** The ```sh blocks of a markdown file's section (from its heading to the next heading). */
function shellBlocks(file: string, heading: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const start = `\n${text}`.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`${file} has no heading ${heading}`);
  const rest = text.slice(start + heading.length + 1);
  const section = rest.slice(0, rest.search(/\n#{1,3} /) >>> 0);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  for (const block of blocks) ran.add(block);
  return blocks;
}

/** Every ```sh block of README.md and docs/*.md, and the blocks this file ran. */
function everyShellBlock(): { file: string; block: string }[] {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).map((name) => `docs/${name}`)];
  return files.flatMap((file) =>
    [...readFileSync(join(ROOT, file), 'utf8').matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => ({
      file,
      block: m[1]!,
    })),
  );
}
const ran = new Set<string>();

/**
 * The quick start's blocks run elsewhere: `npm ci` and `npm test` are what `.ci/run` runs, `npm start`
 * is run by test/quick-start.e2e.ts and `npm run demo` by test/demo.e2e.ts.
 */
const RUN_ELSEWHERE = ['npm ci && npm start\n', 'npm run demo\n', 'npm test\n'];

/** Starts a block that does not end by itself (the agent), in its own process group. */
function bashInBackground(script: string, cwd: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, detached: true, stdio: 'ignore' });
}

/** Runs a script with bash -e (the first failing command stops it), in `cwd`, with `env`. */
function bash(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-euo', 'pipefail', '-c', script],
      { cwd, env, maxBuffer: 64 * 2 ** 20, timeout: 240_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * The README's walk-throughs run as written, in order, on a fresh server with a delta worker: the
 * `ferry` CLI block (fleet, key, simulated devices, push v1, roll it out, push v2, deltas, staged
 * rollout of v2), then the curl block, then docs/cli.md's block. What the test supplies is what a new
 * user has: a folder where `npx ferry` and `npm run simulate` work and `data/admin-token` holds the
 * token, and a `docker` that can `save` two versions of an app (here a stand-in that serves archives
 * skopeo made of app:1 and app:2). Only the server URL in the blocks is replaced by the test server's.
 */
describe('README and docs command blocks run as written', () => {
  let server: TestServer;
  let worker: WorkerProcess;
  let work: string;
  let env: NodeJS.ProcessEnv;
  let engine: DockerEngine;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-readme-'));
    const fixtures = buildImageFixtures(join(work, 'fixtures'));
    const prefix = `readme${process.pid}`;
    const mqttPort = await freePort();
    [server, , engine] = await Promise.all([
      startTestServer('sqlite', {
        FERRY_QUEUE_PREFIX: prefix,
        MQTT_PORT: String(mqttPort),
        FERRY_ROLLOUT_TICK_MS: '200',
        FERRY_STATE_FLUSH_MS: '200',
      }),
      buildCli(),
      startDockerEngine(),
    ]);
    worker = await startWorker({ DATA_DIR: server.dataDir, FERRY_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' });

    // The user's checkout: what the blocks use from it, linked; the token where `npm start` saves it.
    const checkout = join(work, 'ferry');
    mkdirSync(join(checkout, 'data'), { recursive: true });
    for (const name of ['node_modules', 'package.json', 'devices', 'apps', 'libs', 'scripts'])
      symlinkSync(join(ROOT, name), join(checkout, name));
    writeFileSync(join(checkout, 'data', 'admin-token'), `${ADMIN_TOKEN}\n`, { mode: 0o600 });
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'docker'),
      [
        '#!/bin/sh',
        '# stand-in for `docker save app:N [-o FILE]`: archives skopeo made of app:1 and app:2',
        '[ "$1" = save ] || { echo "docker stand-in: only save" >&2; exit 1; }',
        `case "$2" in app:1) f='${fixtures.v1Docker}';; app:2) f='${fixtures.v2Docker}';; *) echo "no image $2" >&2; exit 1;; esac`,
        'if [ "${3:-}" = -o ]; then cp "$f" "$4"; else cat "$f"; fi',
        '',
      ].join('\n'),
    );
    chmodSync(join(bin, 'docker'), 0o755);
    // npx with a local bin runs node_modules/.bin/NAME; this does the same without npx's seconds of
    // start-up per command (a minute over the blocks on a loaded CI machine).
    writeFileSync(
      join(bin, 'npx'),
      '#!/bin/sh\nname="$1"; shift\nexec "$PWD/node_modules/.bin/$name" "$@"\n',
    );
    chmodSync(join(bin, 'npx'), 0o755);
    env = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: process.env.HOME,
      XDG_CONFIG_HOME: join(work, 'config'),
      npm_config_update_notifier: 'false',
    };
  }, 240_000);

  afterAll(async () => {
    await worker?.stop();
    await server?.close();
    await engine?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  const withServer = (block: string): string => block.replaceAll('http://127.0.0.1:8080', server.url);

  it('runs the ferry CLI walk-through: devices on v1, then v2 rolled out in stages with deltas', async () => {
    const [block] = shellBlocks('README.md', '### First steps with the `ferry` CLI');
    expect(block).toContain('npx ferry rollout start pumps v2');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-3000) }).toEqual({
      code: 0,
      stderr: expect.any(String) as string,
    });
    // Every device registered, installed v1, then took v2 through all four batches.
    const fleet = (await (await server.api('/v1/fleets/pumps')).json()) as Fleet;
    const releases = (await (await server.api(`/v1/fleets/${fleet.id}/releases`)).json()) as Release[];
    expect(releases.map((r) => r.version).sort()).toEqual([1, 2]);
    const rollouts = (await (await server.api(`/v1/fleets/${fleet.id}/rollouts`)).json()) as RolloutView[];
    const [v2, v1] = rollouts;
    expect(v1).toMatchObject({ releaseVersion: 1, state: 'completed', total: 20 });
    expect(v2).toMatchObject({
      releaseVersion: 2,
      state: 'completed',
      total: 20,
      batches: expect.any(Array),
    });
    expect(v2!.batches).toHaveLength(4);
    expect(v2!.counts.succeeded).toBe(20);
    // What the block printed: the devices online, the per-base deltas line for v1, the watched end.
    expect(result.stdout).toMatch(/what a device on each release downloads to reach v2:/);
    expect(result.stdout).toMatch(/^v1\s+1\s+[01]\/1 ready/m);
    expect(v2!.bytes.sent).toBeGreaterThan(0);
    expect(result.stdout).toMatch(/completed/);
  }, 300_000);

  it('runs the curl walk-through: fleet, key, device registration, push, list', async () => {
    const [block] = shellBlocks('README.md', '### First steps with curl');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('"slug":"tanks"');
    expect(result.stdout).toMatch(/"uuid":"[0-9a-f]{32}"/);
    const releases = (await (await server.api('/v1/fleets/tanks/releases')).json()) as Release[];
    expect(releases).toHaveLength(1);
  }, 120_000);

  it("runs docs/cli.md's opening block", async () => {
    const [block] = shellBlocks('docs/cli.md', "# `ferry`: the operator's command line");
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/dry run|plan/i);
  }, 120_000);

  it("runs the README's simulated-devices block: 50 more devices in the fleet", async () => {
    const [block] = shellBlocks('README.md', '## Rollouts, dashboard and simulated devices');
    const before = ((await (await server.api('/v1/fleets/pumps/devices')).json()) as Device[]).length;
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    const after = (await (await server.api('/v1/fleets/pumps/devices')).json()) as Device[];
    expect(after.length - before).toBe(50);
  }, 120_000);

  it("runs docs/cli.md's keys and audit block", async () => {
    const [block] = shellBlocks('docs/cli.md', '## Operator keys and the audit log');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/ci-deployer/);
    expect(readFileSync(join(work, 'ferry', 'release.key.pub'), 'utf8')).toMatch(/\S/);
  }, 120_000);

  it("runs docs/compose.md's push and bind-mount blocks: three releases, one with the compose file's settings", async () => {
    const before = ((await (await server.api('/v1/fleets/pumps/releases')).json()) as Release[]).length;
    for (const heading of ['## Pushing', '### Bind mounts'])
      for (const block of shellBlocks('docs/compose.md', heading)) {
        const result = await bash(withServer(block), join(work, 'ferry'), env);
        expect({ heading, code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
      }
    const releases = (await (await server.api('/v1/fleets/pumps/releases')).json()) as Release[];
    expect(releases.length - before).toBe(3);
    const mounts = (await (await server.api('/v1/fleets/pumps/bind-mounts')).json()) as { paths: string[] };
    expect(mounts.paths).toEqual(['/srv/data']);
  }, 180_000);

  it("runs docs/variables.md's block: a fleet variable and a device+service secret", async () => {
    const [block] = shellBlocks('docs/variables.md', '## Operator API');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    // The three answers, one after the other: the last is what wins for the worker service.
    const answers = result.stdout.replace(/}\s*{/g, '}\n{').trim().split('\n');
    expect(answers).toHaveLength(3);
    const last = JSON.parse(answers[2]!) as VariableList;
    expect(last).toMatchObject({ service: 'app', variables: expect.any(Array) as unknown[] });
    expect(last.variables.map((v) => [v.name, v.level, v.secret]).sort()).toEqual([
      ['API_TOKEN', 'device+service', true],
      ['SITE', 'fleet', false],
    ]);
    expect(result.stdout).not.toContain('"value":"…"');
  }, 120_000);

  it("runs docs/rollouts.md's update policy block: levels set, a plan that says when batches are done", async () => {
    const [block] = shellBlocks('docs/rollouts.md', '### Maintenance windows and metered links');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/^tag link=lte +- +daily 00:00-06:00 Europe\/Berlin +50 kB\/s/m);
    expect(result.stdout).toMatch(/DONE BY \(IF TOLD NOW\)/);
    const policies = (await (await server.api('/v1/fleets/pumps/update-policy')).json()) as {
      entries: unknown[];
    };
    expect(policies.entries).toEqual([]);
  }, 120_000);

  it("runs docs/rollouts.md's simulator block: a flaky fleet's rollout pauses", async () => {
    const [block] = shellBlocks('docs/rollouts.md', '## Simulator');
    const result = await bash(withServer(block!), join(work, 'ferry'), env);
    expect({ code: result.code, stderr: result.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    expect(result.stdout).toMatch(/exit code [1-9]\d*: the rollout did not complete/);
    const [rollout] = (await (await server.api('/v1/fleets/flaky/rollouts')).json()) as RolloutView[];
    expect(rollout).toMatchObject({ state: 'paused', total: 20 });
  }, 180_000);

  it('runs the device agent blocks of README.md and docs/agent.md: each agent registers and comes online', async () => {
    for (const [file, heading] of [
      ['README.md', '## Device agent'],
      ['docs/agent.md', '## Running it'],
    ] as const) {
      const [block] = shellBlocks(file, heading);
      const name = `readme-agent-${file.replace(/\W/g, '-')}`;
      const dataDir = join(work, name);
      const agent = bashInBackground(withServer(block!), join(work, 'ferry'), {
        ...env,
        // What the device has that this machine lacks: its own folder and engine.
        FERRY_DATA_DIR: dataDir,
        FERRY_ENGINE_SOCKET: engine.socket,
        FERRY_DEVICE_NAME: name,
        FERRY_UPDATE_LOCK: join(dataDir, 'updates.lock'),
      });
      try {
        const deadline = Date.now() + 60_000;
        let device: Device | undefined;
        while (Date.now() < deadline && !device?.online) {
          await new Promise((r) => setTimeout(r, 500));
          const devices = (await (await server.api('/v1/fleets/pumps/devices')).json()) as Device[];
          device = devices.find((d) => d.name === name);
          expect(agent.exitCode).toBeNull();
        }
        expect({ file, name: device?.name, online: device?.online }).toEqual({ file, name, online: true });
      } finally {
        if (agent.exitCode === null) process.kill(-agent.pid!, 'SIGTERM');
      }
    }
  }, 180_000);

  it('runs every command block of README.md and docs/', () => {
    const notRun = everyShellBlock().filter(({ block }) => !ran.has(block) && !RUN_ELSEWHERE.includes(block));
    expect(notRun).toEqual([]);
  });
});
