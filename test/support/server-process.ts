import { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './simulator-harness';
import { deleteQueueKeys, deleteRedisKeys, testQueuePrefix, testRedisPrefix } from './redis-keys';
import { spawnReady } from './spawn-ready';
import { ADMIN_TOKEN, TestServer, apiClient } from './test-server';

const SERVER_MAIN = join(__dirname, '..', '..', 'apps', 'server', 'dist', 'main.js');

/**
 * A real server process (`apps/server/dist/main.js`, built by `npm run build`) on free ports with its
 * own data folder: for tests that read its memory or its log output, or kill it.
 */
export interface ServerProcess extends Pick<TestServer, 'url' | 'mqttPort' | 'api' | 'dataDir'> {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output: () => string;
  /** Resident set size in bytes, from /proc. */
  rss: () => number;
  /** SIGKILL: the process dies without closing anything. */
  kill: () => Promise<void>;
  /** SIGTERM, then the data folder is removed. */
  stop: () => Promise<void>;
}

export async function startServerProcess(env: Record<string, string> = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-server-process-'));
  const port = await freePort();
  const mqttPort = await freePort();
  // Only what the server needs from the test's environment: the services it is pointed at.
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'REDIS_URL'])
    if (process.env[name] !== undefined) inherited[name] = process.env[name];
  // Its own key prefix unless the test shares one between servers on purpose (and cleans it).
  const ownPrefix = env.REDIS_PREFIX === undefined ? testRedisPrefix() : null;
  const ownQueue = env.FERRY_QUEUE_PREFIX === undefined ? testQueuePrefix('process') : null;
  const server = await spawnReady(
    SERVER_MAIN,
    {
      ...inherited,
      ...(ownPrefix ? { REDIS_PREFIX: ownPrefix } : {}),
      ...(ownQueue ? { FERRY_QUEUE_PREFIX: ownQueue } : {}),
      DATA_DIR: dataDir,
      FERRY_ADMIN_TOKEN: ADMIN_TOKEN,
      HOST: '127.0.0.1',
      PORT: String(port),
      MQTT_PORT: String(mqttPort),
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'warn',
      ...env,
    },
    'Ferry server listening',
  );
  const url = `http://127.0.0.1:${port}`;
  return {
    child: server.child,
    url,
    mqttPort: env.MQTT_URL ? null : mqttPort,
    dataDir,
    api: apiClient(url),
    output: server.output,
    rss: () => {
      const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
      const kib = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      if (!kib) throw new Error(`no VmRSS for process ${server.child.pid}`);
      return Number(kib) * 1024;
    },
    kill: () => server.signal('SIGKILL'),
    stop: async () => {
      await server.signal('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
      const redisUrl = env.REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      if (ownPrefix) await deleteRedisKeys(redisUrl, ownPrefix);
      if (ownQueue) await deleteQueueKeys(redisUrl, ownQueue);
    },
  };
}
