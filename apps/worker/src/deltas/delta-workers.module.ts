import { DynamicModule, Module } from '@nestjs/common';
import { DeltaJobName } from '@ferry/protocol';
import { RedisOutageMonitor, createBlobStore } from '@ferry/storage';
import { WorkerConfig } from '../config/worker-config';
import { DELTA_JOB_HANDLERS, DeltaJobHandlers, checkJobHandlers } from './delta-job-handlers';
import { DeltaQueueWorker } from './delta-queue-worker';
import { StagingSweeper } from './staging-sweeper';

/**
 * Runs the delta queue's jobs in sandboxed children (build-delta.sandbox.js, compiled beside this
 * file), after checking that every delta job name has a handler (the worker refuses to boot
 * otherwise), and sweeps the staging folders of builds that died.
 */
@Module({})
export class DeltaWorkersModule {
  static forRoot(
    config: WorkerConfig,
    monitor: RedisOutageMonitor,
    handlers: DeltaJobHandlers = DELTA_JOB_HANDLERS,
  ): DynamicModule {
    checkJobHandlers(Object.values(DeltaJobName), handlers);
    return {
      module: DeltaWorkersModule,
      providers: [
        {
          provide: StagingSweeper,
          useFactory: () =>
            new StagingSweeper(createBlobStore(config.blobs, config.dataDir), config.stagingStaleMs),
        },
        { provide: DeltaQueueWorker, useFactory: () => new DeltaQueueWorker(config, monitor) },
      ],
    };
  }
}
