import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError, parseEnv } from '@ferry/protocol';
import {
  BlobStoreConfig,
  defaultQueuePrefix,
  defaultRedisPrefix,
  ensureSharedInstallId,
  RedisTarget,
  loadBlobStoreConfig,
  loadRedisSentinel,
} from '@ferry/storage';
import { z } from 'zod';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const bytes = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const flag = z
  .enum(['true', 'false', '1', '0'])
  .default('false')
  .transform((v) => v === 'true' || v === '1');
const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine(
      (value) => protocols.includes(new URL(value).protocol),
      `must start with ${protocols.join(' or ')}//`,
    );

function isAddressOrCidr(value: string): boolean {
  const [address = '', bits, ...rest] = value.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** Every environment variable the server reads, with its default. Documented in README.md. */
const EnvSchema = z.object({
  PORT: port(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  MQTT_PORT: port(1883),
  MQTT_URL: url(['mqtt:', 'mqtts:', 'ws:', 'wss:']).optional(),
  MQTT_HOST: z.string().min(1).optional(),
  MQTT_WS: flag,
  MQTT_TLS_CERT: z.string().min(1).optional(),
  MQTT_TLS_KEY: z.string().min(1).optional(),
  MQTT_CLUSTER: z.enum(['none', 'redis']).default('none'),
  MQTT_SERVER_USERNAME: z.string().min(1).max(256).optional(),
  MQTT_SERVER_PASSWORD: z.string().min(1).max(256).optional(),
  MQTT_MAX_PAYLOAD_BYTES: bytes(16 * 1024),
  MQTT_AUTH_FAILURES_PER_MINUTE: z.coerce.number().int().positive().default(10),
  MQTT_HEARTBEAT_SECONDS: z.coerce.number().min(0.1).max(3600).default(60),
  MQTT_SHARED_GROUP: z
    .string()
    .regex(/^[\w-]{1,64}$/, 'letters, digits, _ and - only')
    .optional(),
  REDIS_PREFIX: z
    .string()
    .regex(/^[\w:.-]{1,64}$/, 'letters, digits and _ : . - only')
    .optional(),
  FERRY_STATE_FLUSH_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  FERRY_EVENTS_HEARTBEAT_SECONDS: z.coerce.number().positive().max(3600).default(15),
  FERRY_ROLLOUT_TICK_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  FERRY_NOTICE_RESEND_SECONDS: z.coerce.number().positive().max(3600).default(30),
  FERRY_TARGET_EXPIRY_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(366 * 24 * 3600)
    .default(7 * 24 * 3600),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  FERRY_DB_BUSY_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(15_000),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  FERRY_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  PUBLIC_URL: url(['http:', 'https:']).optional(),
  TRUSTED_PROXIES: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p.length > 0),
    )
    .refine(
      (list) => list.every(isAddressOrCidr),
      'a comma-separated list of IP addresses or CIDR ranges (e.g. 10.0.0.5,192.168.0.0/16)',
    ),
  FERRY_MAX_RELEASE_BYTES: bytes(4 * 1024 * 1024 * 1024),
  FERRY_MAX_DECOMPRESSION_RATIO: z.coerce.number().positive().default(100),
  FERRY_MAX_IMAGES_PER_RELEASE: z.coerce.number().int().positive().max(10_000).default(64),
  FERRY_UPLOAD_IDLE_SECONDS: z.coerce.number().positive().max(3600).default(60),
  FERRY_STAGING_STALE_SECONDS: z.coerce.number().min(10).max(86_400).default(30),
  // Longer than the longest bake (7 days): a batch's comparison reads its bake window's events.
  FERRY_HEALTH_EVENTS_DAYS: z.coerce.number().int().min(8).max(3650).default(30),
  FERRY_REGISTRATION_FAILURES_PER_MINUTE: z.coerce.number().int().positive().default(10),
  FERRY_QUEUE_PREFIX: z
    .string()
    .regex(/^[\w-]{1,32}$/, 'letters, digits, _ and - only')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

/** The server's validated configuration: the only place `process.env` is read. */
export interface FerryConfig {
  http: {
    host: string;
    port: number;
    publicUrl: string;
    /**
     * Addresses and CIDR ranges of the reverse proxies whose `X-Forwarded-For` is believed; from any
     * other peer the header is ignored (empty: from none).
     */
    trustedProxies: string[];
  };
  mqtt: {
    /** TCP (or TLS) port of the embedded broker; 0 picks a free one (see BrokerService.port()). */
    port: number;
    host: string;
    /** An external broker to use instead of the embedded one. */
    externalUrl: string | null;
    /** Also serve MQTT over WebSocket on the HTTP server at `/mqtt`. */
    websocket: boolean;
    /** PEM file paths: the embedded broker speaks TLS (mqtts) on `port` when set. */
    tls: { certFile: string; keyFile: string } | null;
    /** `redis`: broker sessions, retained messages and routing shared by every server process. */
    cluster: 'none' | 'redis';
    /** The server's own MQTT identity; generated at start for the embedded broker when null. */
    serverCredentials: { username: string; password: string } | null;
    maxPayloadBytes: number;
    authFailuresPerMinute: number;
    /**
     * How often each embedded broker tells its cluster peers it is alive; a peer silent for three
     * heartbeats is dead, and the last wills of its devices are published.
     */
    heartbeatSeconds: number;
    /** With `MQTT_URL`: subscribe to device messages as `$share/{group}/…`, so replicas split them. */
    sharedGroup: string | null;
  };
  /** This install's id, kept in `DATA_DIR/install-id` (created on first start). */
  installId: string;
  /**
   * Prefix of every Redis key and channel besides the queues: broker cluster state, event bus,
   * rollout lease, failure counters. Default `ferry:<install id>:`.
   */
  redisPrefix: string;
  /** How often coalesced device progress is written to the database. */
  stateFlushMs: number;
  eventsHeartbeatSeconds: number;
  /** How often the rollout engine re-reads running rollouts from the database and moves them on. */
  rolloutTickMs: number;
  /**
   * A rollout tells a connected device again when it stays silent this long after its notice, then
   * after twice as long each time (at most 15 minutes between, 8 times in all): docs/rollouts.md.
   */
  noticeResendMs: number;
  /**
   * How long a signed device target stays valid (docs/security.md "Signed targets"); every answer is
   * signed afresh, so an agent that polls more often than this never holds an expired one.
   */
  targetExpirySeconds: number;
  dataDir: string;
  /** Where blobs live (`BLOB_STORE`, `AWS_*`) and how devices download them. */
  blobs: BlobStoreConfig;
  /**
   * SQLite: `busyTimeoutMs` is how long a write waits (without blocking the process) for a lock another
   * process holds before it fails with 503.
   */
  database: { kind: 'sqlite'; file: string; busyTimeoutMs: number } | { kind: 'postgres'; url: string };
  redisUrl: string;
  /** Redis: `REDIS_URL`, or the primary that `REDIS_SENTINELS` name. */
  redis: RedisTarget;
  /** Redis key prefix of the job queues; workers must use the same. Default `ferry-<install id>`. */
  queuePrefix: string;
  adminToken: string | null;
  limits: {
    maxReleaseBytes: number;
    maxDecompressionRatio: number;
    /** Most images (services) one release archive may hold. */
    maxImagesPerRelease: number;
    /** A push whose body brings no byte for this long is answered 408 and cleaned up. */
    uploadIdleSeconds: number;
    /** Staging folders untouched this long were left by a crashed process: swept (every third of it). */
    stagingStaleSeconds: number;
    registrationFailuresPerMinute: number;
    /** Devices' health events (restarts, drops, …) older than this many days are deleted, hourly. */
    healthEventsDays: number;
  };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  /** `pretty` for people at a terminal, `json` for log collectors. */
  logFormat: 'json' | 'pretty';
}

export { ConfigError };

/**
 * Validates the environment into one typed config; throws {@link ConfigError} naming each bad variable.
 * `installId` is the id kept in DATA_DIR ({@link loadServerConfig} reads or creates it): it names the
 * Redis namespaces that REDIS_PREFIX and FERRY_QUEUE_PREFIX do not set.
 */
export function loadConfig(env: NodeJS.ProcessEnv, installId: string): FerryConfig {
  const e = parseEnv(EnvSchema, env);
  const problems: string[] = [];
  if (Boolean(e.MQTT_TLS_CERT) !== Boolean(e.MQTT_TLS_KEY))
    problems.push('MQTT_TLS_CERT and MQTT_TLS_KEY: set both or neither');
  if (Boolean(e.MQTT_SERVER_USERNAME) !== Boolean(e.MQTT_SERVER_PASSWORD))
    problems.push('MQTT_SERVER_USERNAME and MQTT_SERVER_PASSWORD: set both or neither');
  if (e.MQTT_URL && e.MQTT_CLUSTER !== 'none')
    problems.push(`MQTT_CLUSTER=${e.MQTT_CLUSTER}: only for the embedded broker, not with MQTT_URL`);
  if (problems.length > 0) throw new ConfigError(problems);
  const dataDir = resolve(e.DATA_DIR);
  return {
    http: {
      host: e.HOST,
      port: e.PORT,
      publicUrl: (e.PUBLIC_URL ?? `http://127.0.0.1:${e.PORT}`).replace(/\/+$/, ''),
      trustedProxies: e.TRUSTED_PROXIES,
    },
    mqtt: {
      port: e.MQTT_PORT,
      host: e.MQTT_HOST ?? e.HOST,
      externalUrl: e.MQTT_URL ?? null,
      websocket: e.MQTT_WS,
      tls:
        e.MQTT_TLS_CERT && e.MQTT_TLS_KEY
          ? { certFile: resolve(e.MQTT_TLS_CERT), keyFile: resolve(e.MQTT_TLS_KEY) }
          : null,
      cluster: e.MQTT_CLUSTER,
      serverCredentials:
        e.MQTT_SERVER_USERNAME && e.MQTT_SERVER_PASSWORD
          ? { username: e.MQTT_SERVER_USERNAME, password: e.MQTT_SERVER_PASSWORD }
          : null,
      maxPayloadBytes: e.MQTT_MAX_PAYLOAD_BYTES,
      authFailuresPerMinute: e.MQTT_AUTH_FAILURES_PER_MINUTE,
      heartbeatSeconds: e.MQTT_HEARTBEAT_SECONDS,
      sharedGroup: e.MQTT_SHARED_GROUP ?? null,
    },
    installId,
    redisPrefix: e.REDIS_PREFIX ?? defaultRedisPrefix(installId),
    stateFlushMs: e.FERRY_STATE_FLUSH_MS,
    eventsHeartbeatSeconds: e.FERRY_EVENTS_HEARTBEAT_SECONDS,
    rolloutTickMs: e.FERRY_ROLLOUT_TICK_MS,
    noticeResendMs: e.FERRY_NOTICE_RESEND_SECONDS * 1000,
    targetExpirySeconds: e.FERRY_TARGET_EXPIRY_SECONDS,
    dataDir,
    blobs: loadBlobStoreConfig(env),
    database: e.DATABASE_URL
      ? { kind: 'postgres', url: e.DATABASE_URL }
      : {
          kind: 'sqlite',
          file: resolve(dataDir, 'ferry.sqlite'),
          busyTimeoutMs: e.FERRY_DB_BUSY_TIMEOUT_MS,
        },
    redisUrl: e.REDIS_URL,
    redis: { url: e.REDIS_URL, sentinel: loadRedisSentinel(env) },
    queuePrefix: e.FERRY_QUEUE_PREFIX ?? defaultQueuePrefix(installId),
    adminToken: e.FERRY_ADMIN_TOKEN ?? null,
    limits: {
      maxReleaseBytes: e.FERRY_MAX_RELEASE_BYTES,
      maxDecompressionRatio: e.FERRY_MAX_DECOMPRESSION_RATIO,
      maxImagesPerRelease: e.FERRY_MAX_IMAGES_PER_RELEASE,
      uploadIdleSeconds: e.FERRY_UPLOAD_IDLE_SECONDS,
      stagingStaleSeconds: e.FERRY_STAGING_STALE_SECONDS,
      registrationFailuresPerMinute: e.FERRY_REGISTRATION_FAILURES_PER_MINUTE,
      healthEventsDays: e.FERRY_HEALTH_EVENTS_DAYS,
    },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  };
}

/**
 * {@link loadConfig} for a server process: validates the environment first (nothing is written for a
 * bad one), then reads the install id (DATA_DIR's, or the object store's with `BLOB_STORE=s3://…`),
 * creating DATA_DIR and the id on first start.
 */
export async function loadServerConfig(env: NodeJS.ProcessEnv): Promise<FerryConfig> {
  const { dataDir, blobs } = loadConfig(env, '0000000000000000');
  return loadConfig(env, (await ensureSharedInstallId(blobs, dataDir)).id);
}
