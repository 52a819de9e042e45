import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { minVersion, satisfies } from 'semver';
import { ROOT } from './support/cli';
import { deleteQueueKeys, deleteRedisKeys, testQueuePrefix, testRedisPrefix } from './support/redis-keys';
import { freePort } from './support/simulator-harness';

/** What scripts/build-current.mjs counts as the build's outputs. */
function buildOutputs(): string[] {
  const script = `import { BUILD_OUTPUTS } from ${JSON.stringify(join(ROOT, 'scripts', 'build-current.mjs'))};
process.stdout.write(JSON.stringify(BUILD_OUTPUTS));`;
  return JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }),
  ) as string[];
}

/** scripts/build-current.mjs's answer for `root` (an ES module: asked in a Node process of its own). */
function buildIsCurrent(root: string): boolean {
  const script = `import { buildIsCurrent } from ${JSON.stringify(join(ROOT, 'scripts', 'build-current.mjs'))};
process.stdout.write(String(buildIsCurrent(${JSON.stringify(root)})));`;
  return (
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }) === 'true'
  );
}

/**
 * The README's quick start on this machine: the Node version it names satisfies every installed
 * package (so `npm ci` prints no engine warning), and `npm start` starts the server and one worker
 * without rebuilding when the build is current, on the port it is given, logging one line format,
 * and stops on Ctrl-C.
 */
describe('quick start', () => {
  it('names a Node version every package of the lockfile accepts (no engine warning on npm ci)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    const nvmrc = readFileSync(join(ROOT, '.nvmrc'), 'utf8').trim();
    const stated = minVersion(pkg.engines.node)!.version;
    expect(satisfies(stated, `${nvmrc}.x`)).toBe(true);
    expect(satisfies(process.version, pkg.engines.node)).toBe(true);
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { engines?: { node?: string } | string[] }>;
    };
    const ranges = Object.entries(lock.packages).flatMap(([name, p]) =>
      p.engines && !Array.isArray(p.engines) && p.engines.node ? [{ name, range: p.engines.node }] : [],
    );
    expect(ranges.length).toBeGreaterThan(100);
    expect(ranges.filter(({ range }) => !satisfies(stated, range))).toEqual([]);
  });

  it('tells a current build from one whose sources changed since (so npm start rebuilds only then)', () => {
    const root = mkdtempSync(join(tmpdir(), 'ferry-build-current-'));
    try {
      const write = (file: string, at: number): void => {
        mkdirSync(dirname(join(root, file)), { recursive: true });
        writeFileSync(join(root, file), 'x');
        utimesSync(join(root, file), at, at);
      };
      const past = Date.now() / 1000 - 3600;
      const sources = [
        'libs/protocol/src/index.ts',
        'package-lock.json',
        'tsconfig.base.json',
        'tsconfig.build.json',
      ];
      for (const file of [...buildOutputs(), ...sources]) write(file, past);
      expect(buildIsCurrent(root)).toBe(false); // never built: no stamp
      write('node_modules/.ferry-build-stamp', past + 60);
      expect(buildIsCurrent(root)).toBe(true);
      write('apps/server/src/rollouts/rollout.spec.ts', past + 120); // a test is not a source
      expect(buildIsCurrent(root)).toBe(true);
      write('apps/server/src/rollouts/engine.ts', past + 120);
      expect(buildIsCurrent(root)).toBe(false);
      write('node_modules/.ferry-build-stamp', past + 180);
      expect(buildIsCurrent(root)).toBe(true);
      rmSync(join(root, 'apps/worker/dist/main.js'));
      expect(buildIsCurrent(root)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('npm start: no rebuild when current, server and worker on PORT in one log format, stopped by Ctrl-C', async () => {
    // `npm test` builds first (pretest), so the build is current here; a lone jest run needs a build.
    if (!buildIsCurrent(ROOT))
      throw new Error('the build is not current: run `npm run build` first (`npm test` does it before jest)');
    const dataDir = mkdtempSync(join(tmpdir(), 'ferry-npm-start-'));
    const [port, mqttPort] = [await freePort(), await freePort()];
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const [redisPrefix, queuePrefix] = [testRedisPrefix(), testQueuePrefix('start')];
    const child = spawn('npm', ['start'], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: redisPrefix,
        FERRY_QUEUE_PREFIX: queuePrefix,
        DATA_DIR: dataDir,
        PORT: String(port),
        MQTT_PORT: String(mqttPort),
        npm_config_update_notifier: 'false',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const deadline = Date.now() + 60_000;
      while (!(stdout.includes('Ferry server listening') && stdout.includes('Ferry worker started'))) {
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`npm start:\n${stdout}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(stderr).not.toMatch(/sources changed|npm run build/);
      expect(stdout).toContain(`http://127.0.0.1:${port}`);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      // The admin token is printed once and saved where the README says.
      expect(readFileSync(join(dataDir, 'admin-token'), 'utf8')).toMatch(/\S{32,}/);

      // Every log line of both programs is one pino JSON object (not a terminal: JSON).
      const logLines = stdout.split('\n').filter((line) => line.startsWith('{'));
      const logs = logLines.map(
        (line) => JSON.parse(line) as { name?: string; level?: number; msg?: string },
      );
      expect(new Set(logs.map((l) => l.name))).toEqual(new Set(['server', 'worker']));
      for (const log of logs)
        expect(log).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
      // Besides them, only the start lines and the admin-token banner: no Nest-format or bare log lines.
      expect(stdout).not.toMatch(/^\[Nest\]|^(LOG|WARN|ERROR) /m);

      // Ctrl-C: SIGINT to the terminal's whole process group (npm, start.mjs, server, worker).
      process.kill(-child.pid!, 'SIGINT');
      const started = Date.now();
      await exited;
      expect(Date.now() - started).toBeLessThan(10_000);
      await expect(fetch(`http://127.0.0.1:${port}/readyz`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      await deleteRedisKeys(redisUrl, redisPrefix);
      await deleteQueueKeys(redisUrl, queuePrefix);
    }
  }, 120_000);
});
