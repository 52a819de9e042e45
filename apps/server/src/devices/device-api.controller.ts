import { Body, Controller, Get, Post, Req, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Device, RegisterDeviceSchema, RegisteredDevice, parseWith } from '@ferry/protocol';
import { AuthenticatedDevice, CurrentDevice, DeviceOnly, Public } from '../auth/auth.decorators';
import { DevicesService, publicDevice } from './devices.service';

/** The device API: what agents call, authenticated by their own keys. */
@ApiTags('device API')
@Controller('v1/device')
export class DeviceApiController {
  constructor(private readonly devices: DevicesService) {}

  /** Registers with a provisioning key; 201 when created, 200 when the same registration is repeated. */
  @Post('register')
  @Public()
  async register(
    @Body() body: unknown,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ): Promise<RegisteredDevice> {
    const source = request.ip ?? request.socket.remoteAddress ?? 'unknown';
    const { created, device } = await this.devices.register(
      parseWith(RegisterDeviceSchema, body, 'registration'),
      source,
    );
    response.status(created ? 201 : 200);
    return device;
  }

  /** The device's own record, to check that its key works. */
  @Get('me')
  @DeviceOnly()
  async me(@CurrentDevice() device: AuthenticatedDevice): Promise<Device> {
    return publicDevice(await this.devices.get(device.uuid));
  }
}
