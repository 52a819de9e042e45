import 'reflect-metadata';
import { createLogger, PinoLoggerService } from '@ferry/logging';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  EXIT_SERVICE_UNAVAILABLE,
  RedisOutageMonitor,
  RedisUnreachableError,
  connectRedis,
  describeRedis,
  exitAfterShutdownGrace,
  pingRedis,
} from '@ferry/storage';
import { WorkerConfig, WorkerConfigError, loadWorkerProcessConfig } from './config/worker-config';
import { QueueOwnerMismatchError, checkQueueOwner } from './queue-owner';
import { WorkerModule } from './worker.module';

/** Which install the queue belongs to, per its server (null: none registered it yet). */
async function queueOwner(config: WorkerConfig): Promise<string | null> {
  const redis = connectRedis(config.redis, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await checkQueueOwner(redis, config);
  } finally {
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  let config;
  try {
    config = await loadWorkerProcessConfig(process.env);
  } catch (error) {
    if (error instanceof WorkerConfigError) {
      process.stderr.write(`ferry worker: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  // Before anything connects: one clear line instead of every client's reconnect errors.
  await pingRedis(config.redis);
  const owner = await queueOwner(config);
  exitAfterShutdownGrace('ferry worker');
  // The same pino logger and line format as the server's, so `npm start` prints one format.
  const pino = new PinoLoggerService(
    createLogger({ level: config.logLevel, format: config.logFormat, name: 'worker' }),
  );
  const monitor = new RedisOutageMonitor(config.redis, new Logger('Redis'));
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config, monitor), {
    logger: config.logLevel === 'silent' ? false : pino,
  });
  app.enableShutdownHooks();
  // Always printed, whatever LOG_LEVEL says, like the server's "listening" line: scripts wait for it.
  process.stdout.write(
    `Ferry worker started: data ${config.dataDir} (install ${config.installId}), queue namespace ` +
      `${config.queuePrefix}, blobs ${config.blobs.kind === 'file' ? 'in DATA_DIR' : `s3://${config.blobs.bucket}/${config.blobs.prefix}`}, Redis ${describeRedis(config.redis)}, concurrency ${config.concurrency}\n`,
  );
  if (owner === null)
    new Logger('Worker').warn(
      `no Ferry server has registered the queue namespace "${config.queuePrefix}" on this Redis yet ` +
        `(servers do at start): if this install's server is running, this worker's DATA_DIR ` +
        `(${config.dataDir}) is not the server's, and it will never get a job`,
    );
}

main().catch((error: unknown) => {
  if (error instanceof RedisUnreachableError) {
    process.stderr.write(`ferry worker: ${error.message}\n`);
    process.exit(EXIT_SERVICE_UNAVAILABLE);
  }
  if (error instanceof QueueOwnerMismatchError) {
    process.stderr.write(`ferry worker: ${error.message}\n`);
    process.exit(78);
  }
  process.stderr.write(
    `ferry worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
