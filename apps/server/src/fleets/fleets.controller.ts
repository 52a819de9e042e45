import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  CreateFleetSchema,
  CreateProvisioningKeySchema,
  CreatedProvisioningKey,
  Fleet,
  ProvisioningKey,
  parseWith,
} from '@ferry/protocol';
import { FleetsService, publicFleet } from './fleets.service';

@ApiTags('fleets')
@ApiBearerAuth()
@Controller('v1/fleets')
export class FleetsController {
  constructor(private readonly fleets: FleetsService) {}

  @Post()
  async create(@Body() body: unknown): Promise<Fleet> {
    return this.fleets.create(parseWith(CreateFleetSchema, body, 'fleet'));
  }

  @Get()
  async list(): Promise<Fleet[]> {
    return this.fleets.list();
  }

  @Get(':fleet')
  async get(@Param('fleet') fleet: string): Promise<Fleet> {
    return publicFleet(await this.fleets.get(fleet));
  }

  @Post(':fleet/provisioning-keys')
  async createKey(@Param('fleet') fleet: string, @Body() body: unknown): Promise<CreatedProvisioningKey> {
    const { name } = parseWith(CreateProvisioningKeySchema, body ?? {}, 'provisioning key');
    return this.fleets.createKey(fleet, name);
  }

  @Get(':fleet/provisioning-keys')
  async listKeys(@Param('fleet') fleet: string): Promise<ProvisioningKey[]> {
    return this.fleets.listKeys(fleet);
  }

  @Delete(':fleet/provisioning-keys/:key')
  @HttpCode(204)
  async revokeKey(@Param('fleet') fleet: string, @Param('key') key: string): Promise<void> {
    await this.fleets.revokeKey(fleet, key);
  }
}
