import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './support/cli';
import { deleteQueueKeys, deleteRedisKeys, testQueuePrefix, testRedisPrefix } from './support/redis-keys';
import { freePort } from './support/simulator-harness';

/** Runs `npm run demo` in the checkout with `env` (and nothing else from this process) to its end. */
function demo(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', 'demo'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_update_notifier: 'false', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * `npm run demo` as the README's quick start runs it: with no server answering it starts one on PORT
 * (and checks that port, not 8080), builds the sample app from real Debian packages, rolls v1, v2
 * (deltas) and v3 (compose) out to simulated devices and prints what deltas saved; a failure prints
 * its reason and exits 1.
 */
describe('npm run demo', () => {
  let dataDir: string;
  let port: number;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const [redisPrefix, queuePrefix] = [testRedisPrefix(), testQueuePrefix('demo')];
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'ferry-demo-'));
    port = await freePort();
    env = {
      PORT: String(port),
      MQTT_PORT: String(await freePort()),
      DATA_DIR: dataDir,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
      FERRY_QUEUE_PREFIX: queuePrefix,
      DEMO_DEVICES: '6',
      // Simulated devices only: whether this machine runs a Docker engine must not change the test.
      DEMO_DOCKER_SOCKET: join(dataDir, 'no-docker.sock'),
    };
  });
  afterAll(async () => {
    rmSync(dataDir, { recursive: true, force: true });
    await deleteRedisKeys(redisUrl, redisPrefix);
    await deleteQueueKeys(redisUrl, queuePrefix);
  });

  it('starts its own server on PORT and ends with three completed rollouts and the bytes deltas saved', async () => {
    const result = await demo(env);
    expect({ code: result.code, stderr: result.stderr.slice(-3000) }).toMatchObject({ code: 0 });
    expect(result.stdout).toContain(`No server answers at http://127.0.0.1:${port}: starting one`);
    expect(result.stdout).toMatch(/v1 rollout completed/);
    expect(result.stdout).toMatch(/v2 rollout completed: .* — (\d+\.\d) % saved by deltas/);
    const saved = Number(/— (\d+\.\d) % saved by deltas/.exec(result.stdout)![1]);
    expect(saved).toBeGreaterThan(10);
    expect(result.stdout).toMatch(/v3 \(compose app\) rollout completed/);
    expect(result.stdout).toContain(`Dashboard: http://127.0.0.1:${port}/dashboard`);
  }, 400_000);

  it('prints the reason of a failure and exits 1 (a token the server refuses)', async () => {
    const result = await demo({ ...env, FERRY_TOKEN: 'not-the-admin-token' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/demo failed: POST \/v1\/fleets: 401 /);
  }, 200_000);
});
