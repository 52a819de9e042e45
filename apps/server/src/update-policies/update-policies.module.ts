import { Module } from '@nestjs/common';
import { DevicesModule } from '../devices/devices.module';
import { FleetsModule } from '../fleets/fleets.module';
import { UpdatePoliciesController } from './update-policies.controller';
import { UpdatePoliciesRepository } from './update-policies.repository';
import { UpdatePoliciesService } from './update-policies.service';

/** When devices may download and install, and how fast they may download (docs/rollouts.md). */
@Module({
  imports: [FleetsModule, DevicesModule],
  controllers: [UpdatePoliciesController],
  providers: [UpdatePoliciesRepository, UpdatePoliciesService],
  exports: [UpdatePoliciesService],
})
export class UpdatePoliciesModule {}
