import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './simulator-harness';

/** The master group name the test's sentinels monitor. */
export const SENTINEL_MASTER_NAME = 'ferry';

/**
 * A Redis primary, one replica and three sentinels of the test's own on free loopback ports (never
 * 6379), from Debian's redis-server and redis-sentinel, nothing kept on disk but the sentinels' own
 * configuration (which they rewrite): for tests that kill the primary and watch a failover.
 */
export interface SentinelGroup {
  primaryPort: number;
  replicaPort: number;
  sentinelPorts: number[];
  /** What a server or worker needs to find the primary through the sentinels. */
  env: Record<string, string>;
  /** The primary's port as the sentinels name it now. */
  primaryNow: () => Promise<number>;
  /** The role (`master`, `slave`) the Redis on `port` says it has. */
  roleOf: (port: number) => Promise<string>;
  /** SIGKILL to the primary the group started with. */
  killPrimary: () => Promise<void>;
  stop: () => Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function waitUntil(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Asks one Redis (or sentinel) one command on a short-lived connection. */
async function ask(port: number, ...command: string[]): Promise<unknown> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await redis.call(command[0]!, ...command.slice(1));
  } finally {
    redis.disconnect();
  }
}

export async function startSentinelGroup(): Promise<SentinelGroup> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-sentinel-'));
  const children: ChildProcess[] = [];
  const primaryPort = await freePort();
  const replicaPort = await freePort();
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const redisArgs = (port: number): string[] => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  /**
   * One sentinel, answering on its port. The port was free when picked, but another process may
   * take it before the sentinel binds it (the sentinel then exits, and the others never see a
   * third): it is started again on another port.
   */
  const startSentinel = async (firstPort: number): Promise<number> => {
    let port = firstPort;
    for (let attempt = 1; ; attempt++) {
      // A sentinel rewrites its configuration file: each gets its own.
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 10000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn('redis-sentinel', [conf], { stdio: 'ignore' });
      children.push(child);
      await waitUntil(
        async () => child.exitCode !== null || child.signalCode !== null || (await answers(port)),
        10_000,
        `sentinel ${port} to answer`,
      );
      if (child.exitCode === null && child.signalCode === null) return port;
      if (attempt === 3) throw new Error(`redis-sentinel exited three times (last on port ${port})`);
      port = await freePort();
    }
  };
  try {
    const primary = spawn('redis-server', redisArgs(primaryPort), { stdio: 'ignore' });
    children.push(primary);
    await waitUntil(() => answers(primaryPort), 10_000, 'the primary to answer');
    children.push(
      spawn('redis-server', [...redisArgs(replicaPort), '--replicaof', '127.0.0.1', String(primaryPort)], {
        stdio: 'ignore',
      }),
    );
    await waitUntil(
      async () =>
        /master_link_status:up/.test(String(await ask(replicaPort, 'INFO', 'replication').catch(() => ''))),
      20_000,
      'the replica to sync',
    );
    for (let i = 0; i < sentinelPorts.length; i++) sentinelPorts[i] = await startSentinel(sentinelPorts[i]!);
    // Every sentinel knows the primary, its replica and the other sentinels.
    for (const port of sentinelPorts) {
      let seen = '';
      await waitUntil(
        async () => {
          const master = (await ask(port, 'SENTINEL', 'MASTER', SENTINEL_MASTER_NAME).catch(
            () => [],
          )) as string[];
          const field = (name: string): string => master[master.indexOf(name) + 1] ?? '';
          seen = `${field('num-slaves')} replica(s), ${field('num-other-sentinels')} other sentinel(s)`;
          return field('num-slaves') === '1' && field('num-other-sentinels') === '2';
        },
        30_000,
        `sentinel ${port} to see the replica and the other sentinels`,
      ).catch((error: Error) => {
        const running = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
        throw new Error(
          `${error.message} (it sees ${seen}; ${running} of ${children.length} processes running)`,
        );
      });
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    primaryPort,
    replicaPort,
    sentinelPorts,
    env: {
      // With sentinels only its credentials and database count; the sentinels name the host.
      REDIS_URL: `redis://127.0.0.1:${primaryPort}`,
      REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      REDIS_SENTINEL_NAME: SENTINEL_MASTER_NAME,
    },
    primaryNow: async () => {
      const [, port] = (await ask(
        sentinelPorts[0]!,
        'SENTINEL',
        'GET-MASTER-ADDR-BY-NAME',
        SENTINEL_MASTER_NAME,
      )) as string[];
      return Number(port);
    },
    roleOf: async (port) => {
      const [role] = (await ask(port, 'ROLE')) as string[];
      return role ?? '';
    },
    killPrimary: async () => {
      const primary = children[0]!;
      if (primary.exitCode !== null || primary.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => primary.once('exit', () => resolve()));
      primary.kill('SIGKILL');
      await exited;
    },
    stop,
  };
}
