import { Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleaseEvents } from './release-events';
import { ReleasesController } from './releases.controller';
import { ReleasesRepository } from './releases.repository';
import { ReleasesService } from './releases.service';

@Module({
  imports: [FleetsModule],
  controllers: [ReleasesController],
  providers: [ReleasesRepository, ReleasesService, ReleaseEvents],
  exports: [ReleasesService, ReleasesRepository, ReleaseEvents],
})
export class ReleasesModule {}
