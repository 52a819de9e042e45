import { resolve } from 'node:path';
import { DEFAULT_LITERAL_STRONG_LIMIT } from '@ferry/delta';
import { ConfigError, parseEnv } from '@ferry/protocol';
import {
  BlobStoreConfig,
  INSTALL_ID_FILE,
  defaultQueuePrefix,
  ensureSharedInstallId,
  RedisTarget,
  loadBlobStoreConfig,
  loadRedisSentinel,
  readInstallIdSync,
} from '@ferry/storage';
import { z } from 'zod';

const EnvSchema = z.object({
  DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: z
    .string()
    .url()
    .refine(
      (v) => ['redis:', 'rediss:'].includes(new URL(v).protocol),
      'must start with redis:// or rediss://',
    )
    .default('redis://127.0.0.1:6379'),
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
  WORKER_LOCK_MS: z.coerce.number().int().min(1000).default(30_000),
  WORKER_DELTA_MEMORY_MB: z.coerce.number().int().min(64).max(1_048_576).default(1024),
  WORKER_DELTA_STRONG_LITERAL_MB: z.coerce
    .number()
    .int()
    .min(0)
    .max(1024)
    .default(DEFAULT_LITERAL_STRONG_LIMIT / 2 ** 20),
  FERRY_STAGING_STALE_SECONDS: z.coerce.number().min(10).max(86_400).default(30),
  FERRY_QUEUE_PREFIX: z
    .string()
    .regex(/^[\w-]{1,32}$/, 'letters, digits, _ and - only')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

/** The worker's validated configuration: the only place the worker reads `process.env`. */
export interface WorkerConfig {
  /** Local scratch (staging, layer cache) and, with the file store, the blobs. */
  dataDir: string;
  /** Where blobs live (`BLOB_STORE`, `AWS_*`); `BLOB_CACHE_MB` caps the local layer cache. */
  blobs: BlobStoreConfig;
  redisUrl: string;
  /** Redis: `REDIS_URL`, or the primary that `REDIS_SENTINELS` name. */
  redis: RedisTarget;
  concurrency: number;
  /** How long a job's lock lasts; a killed worker's job is taken up again after about this long. */
  lockDurationMs: number;
  /**
   * Memory one delta job's encoder may use for its large structures (whole-base index, cover
   * index of the file being patched, plans held ahead); a job that would need more falls back
   * to cheaper matching.
   */
  deltaMemoryBytes: number;
  /**
   * A delta's literal section (new bytes) up to this size gets brotli quality 11, a larger one
   * quality 9: Debian rootfs, 16 MB of literals, 31 s against 3 s for 9 % more bytes (the
   * encoder's default, 12 MiB; 96 MiB, the limit of every section, gives the smaller delta).
   */
  deltaStrongLiteralBytes: number;
  /** A staging folder untouched this long was left by a killed build (its heartbeat stopped). */
  stagingStaleMs: number;
  /** The install whose DATA_DIR this is (`DATA_DIR/install-id`). */
  installId: string;
  /** Redis key prefix of the queues (the server must use the same); default `ferry-<install id>`. */
  queuePrefix: string;
  /** Whether FERRY_QUEUE_PREFIX set the queue namespace (else it follows the install id). */
  queuePrefixSet: boolean;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  /** `pretty` at a terminal, else `json`: the server's format. */
  logFormat: 'json' | 'pretty';
}

export { ConfigError as WorkerConfigError };

/** Validates the environment; `installId` is DATA_DIR's ({@link loadWorkerProcessConfig} reads it). */
export function loadWorkerConfig(env: NodeJS.ProcessEnv, installId: string): WorkerConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    dataDir: resolve(e.DATA_DIR),
    blobs: loadBlobStoreConfig(env),
    redisUrl: e.REDIS_URL,
    redis: { url: e.REDIS_URL, sentinel: loadRedisSentinel(env) },
    concurrency: e.WORKER_CONCURRENCY,
    lockDurationMs: e.WORKER_LOCK_MS,
    deltaMemoryBytes: e.WORKER_DELTA_MEMORY_MB * 2 ** 20,
    deltaStrongLiteralBytes: e.WORKER_DELTA_STRONG_LITERAL_MB * 2 ** 20,
    stagingStaleMs: e.FERRY_STAGING_STALE_SECONDS * 1000,
    installId,
    queuePrefix: e.FERRY_QUEUE_PREFIX ?? defaultQueuePrefix(installId),
    queuePrefixSet: e.FERRY_QUEUE_PREFIX !== undefined,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  };
}

/**
 * {@link loadWorkerConfig} for the worker process: validates the environment, then reads DATA_DIR's
 * install id, creating it when the worker starts before any server did on a fresh DATA_DIR.
 */
export async function loadWorkerProcessConfig(env: NodeJS.ProcessEnv): Promise<WorkerConfig> {
  const { dataDir, blobs } = loadWorkerConfig(env, '0000000000000000');
  return loadWorkerConfig(env, (await ensureSharedInstallId(blobs, dataDir)).id);
}

/**
 * {@link loadWorkerConfig} for a sandboxed job processor, which the worker starts after it made sure
 * DATA_DIR has an install id: reads it without waiting.
 */
export function loadSandboxConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const { dataDir } = loadWorkerConfig(env, '0000000000000000');
  const id = readInstallIdSync(dataDir);
  if (!id)
    throw new Error(`${dataDir}/${INSTALL_ID_FILE} is missing: the worker creates it before it takes jobs`);
  return loadWorkerConfig(env, id);
}
