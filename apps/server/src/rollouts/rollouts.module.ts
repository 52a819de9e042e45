import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { DeltasModule } from '../deltas/deltas.module';
import { DevicesModule } from '../devices/devices.module';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleasesModule } from '../releases/releases.module';
import { TargetsModule } from '../targets/targets.module';
import { RolloutLockRepository } from './rollout-lock.repository';
import { RolloutNotices } from './rollout-notices.service';
import { RolloutTicker } from './rollout-ticker.service';
import { RolloutsController } from './rollouts.controller';
import { RolloutsRepository } from './rollouts.repository';
import { RolloutsService } from './rollouts.service';

/** Staged, health-gated rollouts (docs/rollouts.md). */
@Module({
  imports: [FleetsModule, DevicesModule, ReleasesModule, DeltasModule, BrokerModule, TargetsModule],
  controllers: [RolloutsController],
  providers: [RolloutsRepository, RolloutLockRepository, RolloutNotices, RolloutsService, RolloutTicker],
  exports: [RolloutsService, RolloutTicker],
})
export class RolloutsModule {}
