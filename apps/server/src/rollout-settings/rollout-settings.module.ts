import { Module } from '@nestjs/common';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleasesModule } from '../releases/releases.module';
import { RolloutsModule } from '../rollouts/rollouts.module';
import { RolloutSettingsController } from './rollout-settings.controller';
import { RolloutSettingsRepository } from './rollout-settings.repository';
import { RolloutSettingsService } from './rollout-settings.service';

/** Fleets' default rollout strategy and "track latest" (docs/rollouts.md). */
@Module({
  imports: [FleetsModule, ReleasesModule, RolloutsModule],
  controllers: [RolloutSettingsController],
  providers: [RolloutSettingsRepository, RolloutSettingsService],
  exports: [RolloutSettingsService],
})
export class RolloutSettingsModule {}
