import { Controller, Get, Headers, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DeviceVariables } from '@ferry/protocol';
import { AuthenticatedDevice, CurrentDevice, DeviceOnly } from '../auth/auth.decorators';
import { VariablesService } from './variables.service';

/**
 * `GET /v1/device/variables`: the device's variables, every level resolved per service, secrets in
 * clear (only here). The ETag is the version: a device that asks with `If-None-Match` and runs the
 * current version is answered 304 without a body, so polling costs almost nothing.
 */
@ApiTags('device API')
@Controller('v1/device/variables')
@DeviceOnly()
export class DeviceVariablesController {
  constructor(private readonly variables: VariablesService) {}

  @Get()
  async get(
    @CurrentDevice() device: AuthenticatedDevice,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res() response: Response,
  ): Promise<void> {
    const variables: DeviceVariables = await this.variables.forDevice(device.uuid, device.fleetId);
    const etag = `"${variables.version}"`;
    response.setHeader('ETag', etag);
    response.setHeader('Cache-Control', 'private, no-cache');
    const held = (ifNoneMatch ?? '').split(',').map((tag) => tag.trim().replace(/^W\//, ''));
    if (held.includes(etag)) response.status(304).end();
    else response.status(200).json(variables);
  }
}
