import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { VolumePurgeOutcomeSchema, parseWith } from '@ferry/protocol';
import { AuthenticatedDevice, CurrentDevice, DeviceOnly } from '../auth/auth.decorators';
import { VolumePurgesService } from './volume-purges.service';

/** `POST /v1/device/volume-purges/{volume}`: the device's answer to a purge its target carried. */
@ApiTags('device API')
@Controller('v1/device/volume-purges')
@DeviceOnly()
export class DeviceVolumePurgesController {
  constructor(private readonly purges: VolumePurgesService) {}

  @Post(':volume')
  @HttpCode(204)
  async answer(
    @CurrentDevice() device: AuthenticatedDevice,
    @Param('volume') volume: string,
    @Body() body: unknown,
  ): Promise<void> {
    await this.purges.finish(device.uuid, volume, parseWith(VolumePurgeOutcomeSchema, body, 'outcome'));
  }
}
