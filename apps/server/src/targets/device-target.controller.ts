import { Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { DeviceTarget, TargetRequestSchema, parseWith } from '@ferry/protocol';
import { z } from 'zod';
import { AuthenticatedDevice, CurrentDevice, DeviceOnly } from '../auth/auth.decorators';
import { DeviceTargetService } from './device-target.service';

const TargetQuerySchema = z.object({ have: z.string().max(300_000).optional() }).strict();

/** The device's target: polled by agents when MQTT is down, fetched after every notice. */
@ApiTags('device API')
@Controller('v1/device/target')
@DeviceOnly()
export class DeviceTargetController {
  constructor(private readonly targets: DeviceTargetService) {}

  /** `?have=sha256:…,sha256:…` lists the layer diffIDs the device's engine holds. */
  @Get()
  async get(@CurrentDevice() device: AuthenticatedDevice, @Query() query: unknown): Promise<DeviceTarget> {
    const { have } = parseWith(TargetQuerySchema, query, 'query');
    const list = have ? have.split(',').filter((d) => d.length > 0) : [];
    return this.targets.resolve(device.uuid, parseWith(TargetRequestSchema, { have: list }, 'have').have);
  }

  /** The same, for devices holding more layers than fit in a URL. */
  @Post()
  @HttpCode(200)
  async post(@CurrentDevice() device: AuthenticatedDevice, @Body() body: unknown): Promise<DeviceTarget> {
    return this.targets.resolve(
      device.uuid,
      parseWith(TargetRequestSchema, body ?? {}, 'target request').have,
    );
  }
}
