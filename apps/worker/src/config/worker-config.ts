import { resolve } from 'node:path';
import { ConfigError, parseEnv } from '@ferry/protocol';
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
  FERRY_QUEUE_PREFIX: z
    .string()
    .regex(/^[\w-]{1,32}$/, 'letters, digits, _ and - only')
    .default('ferry'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** The worker's validated configuration: the only place the worker reads `process.env`. */
export interface WorkerConfig {
  dataDir: string;
  redisUrl: string;
  concurrency: number;
  /** How long a job's lock lasts; a killed worker's job is taken up again after about this long. */
  lockDurationMs: number;
  /** Redis key prefix of the queues (the server must use the same). */
  queuePrefix: string;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
}

export { ConfigError as WorkerConfigError };

export function loadWorkerConfig(env: NodeJS.ProcessEnv): WorkerConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    dataDir: resolve(e.DATA_DIR),
    redisUrl: e.REDIS_URL,
    concurrency: e.WORKER_CONCURRENCY,
    lockDurationMs: e.WORKER_LOCK_MS,
    queuePrefix: e.FERRY_QUEUE_PREFIX,
    logLevel: e.LOG_LEVEL,
  };
}
