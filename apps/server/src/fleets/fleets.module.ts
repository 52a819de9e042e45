import { Module } from '@nestjs/common';
import { FleetsController } from './fleets.controller';
import { FleetsRepository } from './fleets.repository';
import { FleetsService } from './fleets.service';

@Module({
  controllers: [FleetsController],
  providers: [FleetsRepository, FleetsService],
  exports: [FleetsService],
})
export class FleetsModule {}
