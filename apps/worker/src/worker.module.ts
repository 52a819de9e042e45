import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { WorkerConfig } from './config/worker-config';
import { DeltasModule } from './deltas/deltas.module';

@Module({})
export class WorkerModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        BullModule.forRoot({ connection: { url: config.redisUrl, maxRetriesPerRequest: null } }),
        DeltasModule.forRoot(config),
      ],
    };
  }
}
