import { DynamicModule, Module } from '@nestjs/common';
import { RedisOutageMonitor } from '@ferry/storage';
import { WorkerConfig } from './config/worker-config';
import { DeltaWorkersModule } from './deltas/delta-workers.module';

@Module({})
export class WorkerModule {
  static forRoot(config: WorkerConfig, monitor: RedisOutageMonitor): DynamicModule {
    return { module: WorkerModule, imports: [DeltaWorkersModule.forRoot(config, monitor)] };
  }
}
