import { resolve } from 'node:path';
import { z } from 'zod';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const bytes = (fallback: number) => z.coerce.number().int().positive().default(fallback);
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
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  FERRY_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  PUBLIC_URL: url(['http:', 'https:']).optional(),
  FERRY_MAX_RELEASE_BYTES: bytes(4 * 1024 * 1024 * 1024),
  FERRY_MAX_DECOMPRESSION_RATIO: z.coerce.number().positive().default(100),
  FERRY_REGISTRATION_FAILURES_PER_MINUTE: z.coerce.number().int().positive().default(10),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

/** The server's validated configuration: the only place `process.env` is read. */
export interface FerryConfig {
  http: { host: string; port: number; publicUrl: string };
  mqtt: { port: number; externalUrl: string | null };
  dataDir: string;
  database: { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };
  redisUrl: string;
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

/** A configuration problem, naming the variable that is wrong. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Validates the environment into one typed config; throws {@link ConfigError} naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv): FerryConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map(
        (issue) =>
          `${issue.path.join('.')}=${JSON.stringify(present[issue.path.join('.')] ?? '')}: ${issue.message}`,
      ),
    );
  }
  const e = parsed.data;
  const dataDir = resolve(e.DATA_DIR);
  return {
    http: {
      host: e.HOST,
      port: e.PORT,
      publicUrl: (e.PUBLIC_URL ?? `http://127.0.0.1:${e.PORT}`).replace(/\/+$/, ''),
    },
    mqtt: { port: e.MQTT_PORT, externalUrl: e.MQTT_URL ?? null },
    dataDir,
    database: e.DATABASE_URL
      ? { kind: 'postgres', url: e.DATABASE_URL }
      : { kind: 'sqlite', file: resolve(dataDir, 'ferry.sqlite') },
    redisUrl: e.REDIS_URL,
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
