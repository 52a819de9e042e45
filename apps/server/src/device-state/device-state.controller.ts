import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { DeviceStateMessageSchema, parseWith } from '@ferry/protocol';
import { AuthenticatedDevice, CurrentDevice, DeviceOnly } from '../auth/auth.decorators';
import { Clock } from '../clock/clock';
import { DeviceStateService } from './device-state.service';

/**
 * `POST /v1/device/state`: the HTTP fallback of the MQTT `state` topic for agents that cannot reach
 * the broker. Parsed by the same schema and coalesced by the same service as MQTT reports.
 */
@ApiTags('device API')
@Controller('v1/device/state')
@DeviceOnly()
export class DeviceStateController {
  constructor(
    private readonly state: DeviceStateService,
    private readonly clock: Clock,
  ) {}

  @Post()
  @HttpCode(202)
  report(@CurrentDevice() device: AuthenticatedDevice, @Body() body: unknown): { accepted: true } {
    this.state.knowDevice(device.uuid, device.fleetId);
    this.state.report(device.uuid, parseWith(DeviceStateMessageSchema, body, 'state'), this.clock.iso());
    return { accepted: true };
  }
}
