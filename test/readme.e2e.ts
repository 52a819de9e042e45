import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet, Release, RolloutView } from '@ferry/protocol';
import { ROOT, buildCli } from './support/cli';
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
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
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

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-readme-'));
    const fixtures = buildImageFixtures(join(work, 'fixtures'));
    const prefix = `readme${process.pid}`;
    const mqttPort = await freePort();
    [server] = await Promise.all([
      startTestServer('sqlite', {
        FERRY_QUEUE_PREFIX: prefix,
        MQTT_PORT: String(mqttPort),
        FERRY_ROLLOUT_TICK_MS: '200',
        FERRY_STATE_FLUSH_MS: '200',
      }),
      buildCli(),
    ]);
    worker = await startWorker({ DATA_DIR: server.dataDir, FERRY_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' });

    // The user's checkout: what the blocks use from it, linked; the token where `npm start` saves it.
    const checkout = join(work, 'ferry');
    mkdirSync(join(checkout, 'data'), { recursive: true });
    for (const name of ['node_modules', 'package.json', 'devices', 'apps', 'libs'])
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
});
