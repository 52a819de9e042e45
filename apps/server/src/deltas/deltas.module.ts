import { Module } from '@nestjs/common';
import { ReleasesModule } from '../releases/releases.module';
import { DeltaJobsRepository } from './delta-jobs.repository';
import { DeltasController } from './deltas.controller';
import { DeltasRepository } from './deltas.repository';
import { DeltasService } from './deltas.service';

@Module({
  imports: [ReleasesModule],
  controllers: [DeltasController],
  providers: [DeltasRepository, DeltaJobsRepository, DeltasService],
  exports: [DeltasService],
})
export class DeltasModule {}
