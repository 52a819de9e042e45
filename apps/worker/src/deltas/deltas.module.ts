import { join } from 'node:path';
import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { QueueName } from '@ferry/protocol';
import { WorkerConfig } from '../config/worker-config';

/** Registers the delta queue with its sandboxed processor (build-delta.sandbox.js, compiled beside this file). */
@Module({})
export class DeltasModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    return {
      module: DeltasModule,
      imports: [
        BullModule.registerQueue({
          name: QueueName.Deltas,
          prefix: config.queuePrefix,
          processors: [
            {
              path: join(__dirname, 'build-delta.sandbox.js'),
              concurrency: config.concurrency,
              lockDuration: config.lockDurationMs,
              stalledInterval: config.lockDurationMs,
              maxStalledCount: 2,
              useWorkerThreads: false,
            },
          ],
        }),
      ],
    };
  }
}
