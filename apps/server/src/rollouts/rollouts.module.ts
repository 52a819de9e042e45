import { Module } from '@nestjs/common';
import { DeltasModule } from '../deltas/deltas.module';
import { DevicesModule } from '../devices/devices.module';
import { FleetsModule } from '../fleets/fleets.module';
import { ReleasesModule } from '../releases/releases.module';
import { TargetsModule } from '../targets/targets.module';
import { UpdatePoliciesModule } from '../update-policies/update-policies.module';
import { RolloutHealthRepository } from './rollout-health.repository';
import { RolloutHealthService } from './rollout-health.service';
import { RolloutLockRepository } from './rollout-lock.repository';
import { RolloutNotices } from './rollout-notices.service';
import { RolloutNoticesRepository } from './rollout-notices.repository';
import { RolloutPlanningService } from './rollout-planning.service';
import { RolloutRunningService } from './rollout-running.service';
import { RolloutSamplesRepository } from './rollout-samples.repository';
import { RolloutTicker } from './rollout-ticker.service';
import { RolloutViewsService } from './rollout-views.service';
import { RolloutsController } from './rollouts.controller';
import { RolloutsRepository } from './rollouts.repository';

/**
 * Staged, health-gated rollouts (docs/rollouts.md): planning, running (the only caller of the engine),
 * views, the notices a step sends, and the ticker that steps active rollouts.
 */
@Module({
  imports: [FleetsModule, DevicesModule, ReleasesModule, DeltasModule, TargetsModule, UpdatePoliciesModule],
  controllers: [RolloutsController],
  providers: [
    RolloutsRepository,
    RolloutNoticesRepository,
    RolloutSamplesRepository,
    RolloutLockRepository,
    RolloutHealthRepository,
    RolloutHealthService,
    RolloutPlanningService,
    RolloutNotices,
    RolloutRunningService,
    RolloutViewsService,
    RolloutTicker,
  ],
  exports: [RolloutPlanningService, RolloutRunningService, RolloutViewsService, RolloutTicker],
})
export class RolloutsModule {}
