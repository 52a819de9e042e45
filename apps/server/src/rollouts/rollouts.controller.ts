import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  CreateRolloutSchema,
  FleetRolloutSettings,
  FleetSettingsSchema,
  ListRolloutsQuerySchema,
  RolloutDeviceView,
  RolloutPlan,
  RolloutView,
  parseWith,
} from '@ferry/protocol';
import { RolloutsService } from './rollouts.service';

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('v1')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  /**
   * Starts a staged rollout of a release to the fleet's devices (201 with the rollout and its plan), or
   * with `dryRun: true` only answers the plan (200): devices per batch and projected bytes.
   */
  @Post('fleets/:fleet/rollouts')
  async create(
    @Param('fleet') fleet: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) response: Response,
  ): Promise<(RolloutView & { plan: RolloutPlan }) | { dryRun: true; plan: RolloutPlan }> {
    const input = parseWith(CreateRolloutSchema, body, 'rollout');
    const { plan, rollout } = await this.rollouts.create(fleet, input);
    if (!rollout) {
      response.status(200);
      return { dryRun: true, plan };
    }
    return { ...rollout, plan };
  }

  @Get('fleets/:fleet/rollouts')
  async list(@Param('fleet') fleet: string, @Query() query: unknown): Promise<RolloutView[]> {
    const { state, limit } = parseWith(ListRolloutsQuerySchema, query, 'query');
    return this.rollouts.list(fleet, state, limit);
  }

  /** The fleet's rollout settings: `trackLatest` starts a rollout with `defaultStrategy` on every push. */
  @Patch('fleets/:fleet')
  async updateSettings(@Param('fleet') fleet: string, @Body() body: unknown): Promise<FleetRolloutSettings> {
    return this.rollouts.updateSettings(fleet, parseWith(FleetSettingsSchema, body, 'fleet settings'));
  }

  @Get('fleets/:fleet/rollout-settings')
  async settings(@Param('fleet') fleet: string): Promise<FleetRolloutSettings> {
    return this.rollouts.settings(fleet);
  }

  /** State, batches, counts by device state, failures with reasons, bytes, and counts over time. */
  @Get('rollouts/:id')
  async get(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.view(id);
  }

  @Get('rollouts/:id/devices')
  async devices(@Param('id') id: string): Promise<RolloutDeviceView[]> {
    return this.rollouts.deviceViews(id);
  }

  /** Stops starting batches; devices already told carry on and are still judged. */
  @Post('rollouts/:id/pause')
  @HttpCode(200)
  async pause(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.act(id, 'pause');
  }

  /** Carries on; after a failed batch, with the next batch. */
  @Post('rollouts/:id/resume')
  @HttpCode(200)
  async resume(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.act(id, 'resume');
  }

  /** Ends the rollout: devices not yet told are canceled; devices already told keep their target. */
  @Post('rollouts/:id/abort')
  @HttpCode(200)
  async abort(@Param('id') id: string): Promise<RolloutView> {
    return this.rollouts.act(id, 'abort');
  }
}
