import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import type { Response } from 'express';
import {
  SetVariableSchema,
  Variable,
  VariableList,
  VariableNameSchema,
  VariableQuerySchema,
  parseWith,
} from '@ferry/protocol';
import { VariableOwner, VariablesService } from './variables.service';

/**
 * Configuration variables of fleets and devices (docs/variables.md). `?service=` narrows a list to what
 * wins for one service, or names the service of the variable to delete. Secret values show as null.
 */
@ApiTags('variables')
@ApiBearerAuth()
@Controller('v1')
export class VariablesController {
  constructor(private readonly variables: VariablesService) {}

  @Get('fleets/:fleet/variables')
  @Requires('viewer', { fleet: 'fleet' })
  async listFleet(@Param('fleet') fleet: string, @Query() query: unknown): Promise<VariableList> {
    return this.variables.list({ fleet }, parseWith(VariableQuerySchema, query, 'query').service);
  }

  /** Sets a fleet or fleet+service variable: 201 when created, 200 when its value was replaced. */
  @Post('fleets/:fleet/variables')
  @Requires('deployer', { fleet: 'fleet' })
  async setFleet(
    @Param('fleet') fleet: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) response: Response,
  ): Promise<Variable> {
    return this.set({ fleet }, body, response);
  }

  @Delete('fleets/:fleet/variables/:name')
  @Requires('deployer', { fleet: 'fleet' })
  @HttpCode(204)
  async removeFleet(
    @Param('fleet') fleet: string,
    @Param('name') name: string,
    @Query() query: unknown,
  ): Promise<void> {
    await this.remove({ fleet }, name, query);
  }

  /** A device's variables: its own and the fleet's it inherits, each with its level. */
  @Get('devices/:uuid/variables')
  @Requires('viewer', { device: 'uuid' })
  async listDevice(@Param('uuid') uuid: string, @Query() query: unknown): Promise<VariableList> {
    return this.variables.list({ device: uuid }, parseWith(VariableQuerySchema, query, 'query').service);
  }

  /** Sets a device or device+service variable: 201 when created, 200 when its value was replaced. */
  @Post('devices/:uuid/variables')
  @Requires('deployer', { device: 'uuid' })
  async setDevice(
    @Param('uuid') uuid: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) response: Response,
  ): Promise<Variable> {
    return this.set({ device: uuid }, body, response);
  }

  @Delete('devices/:uuid/variables/:name')
  @Requires('deployer', { device: 'uuid' })
  @HttpCode(204)
  async removeDevice(
    @Param('uuid') uuid: string,
    @Param('name') name: string,
    @Query() query: unknown,
  ): Promise<void> {
    await this.remove({ device: uuid }, name, query);
  }

  private async set(owner: VariableOwner, body: unknown, response: Response): Promise<Variable> {
    const { variable, created } = await this.variables.set(
      owner,
      parseWith(SetVariableSchema, body, 'variable'),
    );
    response.status(created ? 201 : 200);
    return variable;
  }

  private async remove(owner: VariableOwner, name: string, query: unknown): Promise<void> {
    const { service } = parseWith(VariableQuerySchema, query, 'query');
    await this.variables.remove(owner, parseWith(VariableNameSchema, name, 'name'), service);
  }
}
