import { Body, Controller, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import { Device, SetTargetSchema, parseWith } from '@ferry/protocol';
import { TargetsService } from './targets.service';

@ApiTags('devices')
@ApiBearerAuth()
@Controller('v1/devices')
export class TargetsController {
  constructor(private readonly targets: TargetsService) {}

  /**
   * Sets the release a device should run and pushes the notice over MQTT. 404 for an unknown device or
   * release, 400 for a release of another fleet.
   */
  @Put(':uuid/target')
  @Requires('deployer', { device: 'uuid' })
  async setTarget(@Param('uuid') uuid: string, @Body() body: unknown): Promise<Device> {
    return this.targets.setTarget(uuid, parseWith(SetTargetSchema, body, 'target'));
  }
}
