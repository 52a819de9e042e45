import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Requires } from '../auth/auth.decorators';
import {
  BindMounts,
  BindMountsSchema,
  CreateFleetSchema,
  CreateProvisioningKeySchema,
  CreatedProvisioningKey,
  Fleet,
  Principal,
  RotateReleaseTrustSchema,
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
  @Requires('admin', 'new-fleet')
  async create(@Body() body: unknown): Promise<Fleet> {
    return this.fleets.create(parseWith(CreateFleetSchema, body, 'fleet'));
  }

  @Get()
  @Requires('viewer', 'own-fleets')
  async list(@CurrentPrincipal() principal: Principal): Promise<Fleet[]> {
    const fleets = await this.fleets.list();
    const visible = principal.fleetIds;
    return visible === null ? fleets : fleets.filter((f) => visible.includes(f.id));
  }

  @Get(':fleet')
  @Requires('viewer', { fleet: 'fleet' })
  async get(@Param('fleet') fleet: string): Promise<Fleet> {
    return publicFleet(await this.fleets.get(fleet));
  }

  @Post(':fleet/provisioning-keys')
  @Requires('provisioner', { fleet: 'fleet' })
  async createKey(@Param('fleet') fleet: string, @Body() body: unknown): Promise<CreatedProvisioningKey> {
    const { name } = parseWith(CreateProvisioningKeySchema, body ?? {}, 'provisioning key');
    return this.fleets.createKey(fleet, name);
  }

  @Get(':fleet/provisioning-keys')
  @Requires('viewer', { fleet: 'fleet' })
  async listKeys(@Param('fleet') fleet: string): Promise<ProvisioningKey[]> {
    return this.fleets.listKeys(fleet);
  }

  @Delete(':fleet/provisioning-keys/:key')
  @Requires('admin', { fleet: 'fleet' })
  @HttpCode(204)
  async revokeKey(@Param('fleet') fleet: string, @Param('key') key: string): Promise<void> {
    await this.fleets.revokeKey(fleet, key);
  }

  /** Rotates the fleet's release keys: the new set signed by the threshold of the current keys. */
  @Put(':fleet/release-trust')
  @Requires('admin', { fleet: 'fleet' })
  async rotateReleaseTrust(@Param('fleet') fleet: string, @Body() body: unknown): Promise<Fleet> {
    return this.fleets.rotateReleaseTrust(fleet, parseWith(RotateReleaseTrustSchema, body, 'release keys'));
  }

  /** Host paths the fleet's compose releases may bind-mount; every other bind mount is refused at push. */
  @Get(':fleet/bind-mounts')
  @Requires('viewer', { fleet: 'fleet' })
  async bindMounts(@Param('fleet') fleet: string): Promise<BindMounts> {
    return { paths: await this.fleets.bindMounts((await this.fleets.get(fleet)).id) };
  }

  @Put(':fleet/bind-mounts')
  // Host paths a container may mount: a device-level privilege, so admin only.
  @Requires('admin', { fleet: 'fleet' })
  async setBindMounts(@Param('fleet') fleet: string, @Body() body: unknown): Promise<BindMounts> {
    return this.fleets.setBindMounts(fleet, parseWith(BindMountsSchema, body, 'bind mounts').paths);
  }
}
