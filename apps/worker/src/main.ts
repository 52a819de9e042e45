import 'reflect-metadata';
import { Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { WorkerConfigError, loadWorkerConfig } from './config/worker-config';

/** The delta worker: BullMQ consumers that build layer deltas (apps/worker/src/deltas). */
@Module({})
class WorkerModule {}

async function main(): Promise<void> {
  let config;
  try {
    config = loadWorkerConfig(process.env);
  } catch (error) {
    if (error instanceof WorkerConfigError) {
      process.stderr.write(`ferry worker: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const app = await NestFactory.createApplicationContext(WorkerModule);
  app.enableShutdownHooks();
  new Logger('Worker').log(
    `Ferry worker started (data ${config.dataDir}, Redis ${config.redisUrl}, concurrency ${config.concurrency})`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `ferry worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
