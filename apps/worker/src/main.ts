import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { WorkerConfigError, loadWorkerConfig } from './config/worker-config';
import { WorkerModule } from './worker.module';

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
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: config.logLevel === 'silent' ? false : undefined,
  });
  app.enableShutdownHooks();
  new Logger('Worker').log(
    `Ferry worker started: data ${config.dataDir}, Redis ${config.redisUrl}, concurrency ${config.concurrency}`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `ferry worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
