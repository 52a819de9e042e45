import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Principal, VolumePurge, parseWith } from '@ferry/protocol';
import { z } from 'zod';
import { CurrentPrincipal, Requires } from '../auth/auth.decorators';
import { VolumePurgesService } from './volume-purges.service';

/** The purge request takes no body: an empty object at most. */
const PurgeBodySchema = z.object({}).strict().optional();

/** Operators purge app volumes from devices (docs/compose.md "Volumes"). */
@ApiTags('devices')
@ApiBearerAuth()
@Controller('v1/devices/:uuid')
export class VolumePurgesController {
  constructor(private readonly purges: VolumePurgesService) {}

  /**
   * Asks the device to remove its volume `<app>_<volume>`: 202 with the pending request, 409 while a
   * release the device runs or is to run declares the volume.
   */
  @Post('volumes/:volume/purge')
  @Requires('deployer', { device: 'uuid' })
  @HttpCode(202)
  async purge(
    @Param('uuid') uuid: string,
    @Param('volume') volume: string,
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<VolumePurge> {
    parseWith(PurgeBodySchema, body === undefined || body === null ? undefined : body, 'body');
    return this.purges.request(uuid, volume, principal.name);
  }

  /** The device's purge requests, newest first, with their outcomes. */
  @Get('volume-purges')
  @Requires('viewer', { device: 'uuid' })
  async list(@Param('uuid') uuid: string): Promise<VolumePurge[]> {
    return this.purges.list(uuid);
  }
}
