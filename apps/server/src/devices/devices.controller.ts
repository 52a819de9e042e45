import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Requires } from '../auth/auth.decorators';
import { Device, Principal, TagDeviceSchema, TagsSchema, parseWith } from '@ferry/protocol';
import { z } from 'zod';
import { DevicesService, publicDevice } from './devices.service';

const ListQuerySchema = z.object({
  search: z.string().max(100).optional(),
  /** `name` or `name=value` */
  tag: z.string().max(330).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  offset: z.coerce.number().int().min(0).default(0),
});

function parseListQuery(query: unknown): {
  search?: string;
  tag?: { name: string; value?: string };
  limit: number;
  offset: number;
} {
  const q = parseWith(ListQuerySchema, query, 'query');
  const [name, ...rest] = q.tag?.split('=') ?? [];
  return {
    search: q.search,
    tag: name ? { name, value: rest.length > 0 ? rest.join('=') : undefined } : undefined,
    limit: q.limit,
    offset: q.offset,
  };
}

@ApiTags('devices')
@ApiBearerAuth()
@Controller('v1')
export class DevicesController {
  constructor(private readonly devices: DevicesService) {}

  @Get('fleets/:fleet/devices')
  @Requires('viewer', { fleet: 'fleet' })
  async listInFleet(@Param('fleet') fleet: string, @Query() query: unknown): Promise<Device[]> {
    return this.devices.listInFleet(fleet, parseListQuery(query));
  }

  @Get('devices')
  @Requires('viewer', 'own-fleets')
  async list(@Query() query: unknown, @CurrentPrincipal() principal: Principal): Promise<Device[]> {
    return this.devices.list({ ...parseListQuery(query), fleetIds: principal.fleetIds ?? undefined });
  }

  @Get('devices/:uuid')
  @Requires('viewer', { device: 'uuid' })
  async get(@Param('uuid') uuid: string): Promise<Device> {
    return publicDevice(await this.devices.get(uuid));
  }

  @Post('devices/:uuid/tags')
  @Requires('deployer', { device: 'uuid' })
  async tag(@Param('uuid') uuid: string, @Body() body: unknown): Promise<Device> {
    const { tags } = parseWith(TagDeviceSchema, body, 'tags');
    const names = Object.fromEntries(Object.keys(tags).map((k) => [k, '']));
    parseWith(TagsSchema, names, 'tags');
    return this.devices.tag(uuid, tags);
  }

  @Delete('devices/:uuid')
  @Requires('admin', { device: 'uuid' })
  @HttpCode(204)
  async deprovision(@Param('uuid') uuid: string): Promise<void> {
    await this.devices.deprovision(uuid);
  }
}
