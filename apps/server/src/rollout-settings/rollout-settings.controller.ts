import { Body, Controller, Get, Param, Patch } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import { FleetRolloutSettings, FleetSettingsSchema, parseWith } from '@ferry/protocol';
import { RolloutSettingsService } from './rollout-settings.service';

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('v1')
export class RolloutSettingsController {
  constructor(private readonly settings: RolloutSettingsService) {}

  /** The fleet's rollout settings: `trackLatest` starts a rollout with `defaultStrategy` on every push. */
  @Patch('fleets/:fleet')
  @Requires('deployer', { fleet: 'fleet' })
  async update(@Param('fleet') fleet: string, @Body() body: unknown): Promise<FleetRolloutSettings> {
    return this.settings.update(fleet, parseWith(FleetSettingsSchema, body, 'fleet settings'));
  }

  @Get('fleets/:fleet/rollout-settings')
  @Requires('viewer', { fleet: 'fleet' })
  async get(@Param('fleet') fleet: string): Promise<FleetRolloutSettings> {
    return this.settings.settings(fleet);
  }
}
