import { resolve } from 'node:path';
import { ConfigError, parseEnv } from '@ferry/protocol';
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
  MQTT_SHARED_GROUP: z
    .string()
    .regex(/^[\w-]{1,64}$/, 'letters, digits, _ and - only')
    .optional(),
  REDIS_PREFIX: z
    .string()
    .regex(/^[\w:.-]{1,64}$/, 'letters, digits and _ : . - only')
    .default('ferry:'),
  FERRY_STATE_FLUSH_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  FERRY_EVENTS_HEARTBEAT_SECONDS: z.coerce.number().positive().max(3600).default(15),
  FERRY_ROLLOUT_TICK_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  FERRY_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  PUBLIC_URL: url(['http:', 'https:']).optional(),
  FERRY_MAX_RELEASE_BYTES: bytes(4 * 1024 * 1024 * 1024),
  FERRY_MAX_DECOMPRESSION_RATIO: z.coerce.number().positive().default(100),
  FERRY_REGISTRATION_FAILURES_PER_MINUTE: z.coerce.number().int().positive().default(10),
  FERRY_QUEUE_PREFIX: z
    .string()
    .regex(/^[\w-]{1,32}$/, 'letters, digits, _ and - only')
    .default('ferry'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

/** The server's validated configuration: the only place `process.env` is read. */
export interface FerryConfig {
  http: { host: string; port: number; publicUrl: string };
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
    /** With `MQTT_URL`: subscribe to device messages as `$share/{group}/…`, so replicas split them. */
    sharedGroup: string | null;
  };
  /** Prefix of Redis keys and channels of the broker cluster and the event bus. */
  redisPrefix: string;
  /** How often coalesced device progress is written to the database. */
  stateFlushMs: number;
  eventsHeartbeatSeconds: number;
  /** How often the rollout engine re-reads running rollouts from the database and moves them on. */
  rolloutTickMs: number;
  dataDir: string;
  database: { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
  redisUrl: string;
  /** Redis key prefix of the job queues; workers must use the same. */
  queuePrefix: string;
  adminToken: string | null;
  limits: {
    maxReleaseBytes: number;
    maxDecompressionRatio: number;
    registrationFailuresPerMinute: number;
  };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  /** `pretty` for people at a terminal, `json` for log collectors. */
  logFormat: 'json' | 'pretty';
}

export { ConfigError };

/** Validates the environment into one typed config; throws {@link ConfigError} naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): FerryConfig {
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
      sharedGroup: e.MQTT_SHARED_GROUP ?? null,
    },
    redisPrefix: e.REDIS_PREFIX,
    stateFlushMs: e.FERRY_STATE_FLUSH_MS,
    eventsHeartbeatSeconds: e.FERRY_EVENTS_HEARTBEAT_SECONDS,
    rolloutTickMs: e.FERRY_ROLLOUT_TICK_MS,
    dataDir,
    database: e.DATABASE_URL
      ? { kind: 'postgres', url: e.DATABASE_URL }
      : { kind: 'sqlite', file: resolve(dataDir, 'ferry.sqlite') },
    redisUrl: e.REDIS_URL,
    queuePrefix: e.FERRY_QUEUE_PREFIX,
    adminToken: e.FERRY_ADMIN_TOKEN ?? null,
    limits: {
      maxReleaseBytes: e.FERRY_MAX_RELEASE_BYTES,
      maxDecompressionRatio: e.FERRY_MAX_DECOMPRESSION_RATIO,
      registrationFailuresPerMinute: e.FERRY_REGISTRATION_FAILURES_PER_MINUTE,
    },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  };
}
