import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import type { Response } from 'express';
import {
  CreateRolloutSchema,
  ListRolloutsQuerySchema,
  RolloutDeviceView,
  RolloutPlan,
  RolloutView,
  parseWith,
} from '@ferry/protocol';
import { OperatorAction } from './rollout-engine';
import { RolloutPlanningService } from './rollout-planning.service';
import { RolloutRunningService } from './rollout-running.service';
import { RolloutViewsService } from './rollout-views.service';

@ApiTags('rollouts')
@ApiBearerAuth()
@Controller('v1')
export class RolloutsController {
  constructor(
    private readonly planning: RolloutPlanningService,
    private readonly running: RolloutRunningService,
    private readonly views: RolloutViewsService,
  ) {}

  /**
   * Starts a staged rollout of a release to the fleet's devices (201 with the rollout and its plan), or
   * with `dryRun: true` only answers the plan (200): devices per batch and projected bytes.
   */
  @Post('fleets/:fleet/rollouts')
  @Requires('deployer', { fleet: 'fleet' })
  async create(
    @Param('fleet') fleet: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) response: Response,
  ): Promise<(RolloutView & { plan: RolloutPlan }) | { dryRun: true; plan: RolloutPlan }> {
    const input = parseWith(CreateRolloutSchema, body, 'rollout');
    if (input.dryRun) {
      response.status(200);
      return { dryRun: true, plan: await this.planning.plan(fleet, input) };
    }
    const { plan, rollout } = await this.running.create(fleet, input);
    return { ...(await this.views.view(rollout.id)), plan };
  }

  @Get('fleets/:fleet/rollouts')
  @Requires('viewer', { fleet: 'fleet' })
  async list(@Param('fleet') fleet: string, @Query() query: unknown): Promise<RolloutView[]> {
    const { state, limit } = parseWith(ListRolloutsQuerySchema, query, 'query');
    return this.views.list(fleet, state, limit);
  }

  /** State, batches, counts by device state, failures with reasons, bytes, and counts over time. */
  @Get('rollouts/:id')
  @Requires('viewer', { rollout: 'id' })
  async get(@Param('id') id: string): Promise<RolloutView> {
    return this.views.view(id);
  }

  @Get('rollouts/:id/devices')
  @Requires('viewer', { rollout: 'id' })
  async devices(@Param('id') id: string): Promise<RolloutDeviceView[]> {
    return this.views.devices(id);
  }

  /** Stops starting batches; devices already told carry on and are still judged. */
  @Post('rollouts/:id/pause')
  @Requires('deployer', { rollout: 'id' })
  @HttpCode(200)
  async pause(@Param('id') id: string): Promise<RolloutView> {
    return this.act(id, 'pause');
  }

  /** Carries on; after a failed batch, with the next batch. */
  @Post('rollouts/:id/resume')
  @Requires('deployer', { rollout: 'id' })
  @HttpCode(200)
  async resume(@Param('id') id: string): Promise<RolloutView> {
    return this.act(id, 'resume');
  }

  /** Ends the rollout: devices not yet told are canceled; devices already told keep their target. */
  @Post('rollouts/:id/abort')
  @Requires('deployer', { rollout: 'id' })
  @HttpCode(200)
  async abort(@Param('id') id: string): Promise<RolloutView> {
    return this.act(id, 'abort');
  }

  private async act(id: string, action: OperatorAction): Promise<RolloutView> {
    await this.running.act(id, action);
    return this.views.view(id);
  }
}
