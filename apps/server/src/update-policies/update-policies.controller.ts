import { Body, Controller, Delete, Get, HttpCode, Param, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  EffectiveUpdatePolicy,
  UpdatePolicyInputSchema,
  UpdatePolicyLevelSchema,
  parseWith,
} from '@ferry/protocol';
import { Requires } from '../auth/auth.decorators';
import { FleetUpdatePolicies, UpdatePoliciesService } from './update-policies.service';

/**
 * Maintenance windows, download windows and download rate caps per fleet, tag value or device
 * (docs/rollouts.md "Maintenance windows and metered links").
 */
@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('v1')
export class UpdatePoliciesController {
  constructor(private readonly policies: UpdatePoliciesService) {}

  @Get('fleets/:fleet/update-policy')
  @Requires('viewer', { fleet: 'fleet' })
  async list(@Param('fleet') fleet: string): Promise<FleetUpdatePolicies> {
    return this.policies.list(fleet);
  }

  /** Sets what the fleet, one tag value (`tag`) or one device (`device`) sets, replacing it. */
  @Put('fleets/:fleet/update-policy')
  @Requires('deployer', { fleet: 'fleet' })
  async set(@Param('fleet') fleet: string, @Body() body: unknown): Promise<FleetUpdatePolicies> {
    return this.policies.set(fleet, parseWith(UpdatePolicyInputSchema, body, 'update policy'));
  }

  @Delete('fleets/:fleet/update-policy')
  @Requires('deployer', { fleet: 'fleet' })
  @HttpCode(204)
  async remove(@Param('fleet') fleet: string, @Query() query: unknown): Promise<void> {
    await this.policies.remove(fleet, parseWith(UpdatePolicyLevelSchema, query, 'query'));
  }

  /** What applies to one device, and the level each part comes from. */
  @Get('devices/:uuid/update-policy')
  @Requires('viewer', { device: 'uuid' })
  async device(@Param('uuid') uuid: string): Promise<EffectiveUpdatePolicy & { uuid: string }> {
    return this.policies.forDevice(uuid);
  }
}
