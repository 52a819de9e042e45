import { ConfigError, parseEnv } from '@ferry/protocol';
import { Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';

/**
 * Where the server and the worker find Redis: one instance (`REDIS_URL`), or the primary that Redis
 * Sentinel names (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`). With Sentinel, ioredis asks the sentinels
 * for the primary at every (re)connection, so after a failover every client (BullMQ's included)
 * reconnects to the promoted replica on its own.
 */
export interface RedisTarget {
  /** `REDIS_URL`; with Sentinel only its user name, password, database number and TLS are used. */
  url: string;
  sentinel: RedisSentinel | null;
}

export interface RedisSentinel {
  hosts: { host: string; port: number }[];
  /** The master group name the sentinels monitor (`sentinel monitor <name> …`). */
  name: string;
  /** `REDIS_SENTINEL_PASSWORD`: for sentinels that require one (`requirepass` in sentinel.conf). */
  password: string | null;
}

/** `host:port`, or `[v6 address]:port`. */
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]{1,253})):(\d{1,5})$/;

const EnvSchema = z.object({
  REDIS_SENTINELS: z
    .string()
    .max(4096)
    .transform((value, ctx) => {
      const hosts: { host: string; port: number }[] = [];
      for (const entry of value.split(',').map((e) => e.trim())) {
        const match = HOST_PORT.exec(entry);
        const port = Number(match?.[3]);
        if (!match || port < 1 || port > 65535) {
          ctx.addIssue({ code: 'custom', message: `"${entry.slice(0, 80)}" is not host:port` });
          return z.NEVER;
        }
        hosts.push({ host: match[1] ?? match[2] ?? '', port });
      }
      if (hosts.length > 32) {
        ctx.addIssue({ code: 'custom', message: 'at most 32 sentinels' });
        return z.NEVER;
      }
      return hosts;
    })
    .optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[\w.-]{1,64}$/, 'letters, digits and _ . - only')
    .optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).max(512).optional(),
});

/** Reads `REDIS_SENTINELS`, `REDIS_SENTINEL_NAME` and `REDIS_SENTINEL_PASSWORD`; null when unset. */
export function loadRedisSentinel(env: NodeJS.ProcessEnv): RedisSentinel | null {
  const e = parseEnv(EnvSchema, env);
  if (!e.REDIS_SENTINELS && !e.REDIS_SENTINEL_NAME) {
    if (e.REDIS_SENTINEL_PASSWORD)
      throw new ConfigError(['REDIS_SENTINEL_PASSWORD: only with REDIS_SENTINELS and REDIS_SENTINEL_NAME']);
    return null;
  }
  if (!e.REDIS_SENTINELS || !e.REDIS_SENTINEL_NAME)
    throw new ConfigError(['REDIS_SENTINELS and REDIS_SENTINEL_NAME: set both or neither']);
  return {
    hosts: e.REDIS_SENTINELS,
    name: e.REDIS_SENTINEL_NAME,
    password: e.REDIS_SENTINEL_PASSWORD ?? null,
  };
}

/** A plain `REDIS_URL` string is a target without Sentinel. */
export function redisTarget(target: RedisTarget | string): RedisTarget {
  return typeof target === 'string' ? { url: target, sentinel: null } : target;
}

/**
 * ioredis (and BullMQ `connection`) options for `target` plus `extra`: `{ url, …extra }` for one
 * instance, the sentinels, master name and the URL's credentials and database with Sentinel.
 */
export function redisOptions(
  target: RedisTarget | string,
  extra: RedisOptions = {},
): RedisOptions & { url?: string } {
  const { url, sentinel } = redisTarget(target);
  if (!sentinel) return { url, ...extra };
  const parsed = new URL(url);
  const db = Number(parsed.pathname.slice(1) || 0);
  return {
    sentinels: sentinel.hosts,
    name: sentinel.name,
    ...(sentinel.password ? { sentinelPassword: sentinel.password } : {}),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(Number.isInteger(db) && db > 0 ? { db } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    ...extra,
  };
}

/** A new ioredis client of `target`. */
export function connectRedis(target: RedisTarget | string, extra: RedisOptions = {}): Redis {
  const { url, ...options } = redisOptions(target, extra);
  return url ? new Redis(url, options) : new Redis(options);
}
