import { Body, Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiKey, CreateApiKeySchema, CreatedApiKey, Principal, parseWith } from '@ferry/protocol';
import { CurrentPrincipal, Requires } from './auth.decorators';
import { ApiKeysService } from './api-keys.service';

@ApiTags('api-keys')
@ApiBearerAuth()
@Controller('v1/api-keys')
export class ApiKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  /** A new key: the secret is in this answer only; the server keeps its hash. */
  @Post()
  @Requires('admin', 'all-fleets')
  async create(@Body() body: unknown, @CurrentPrincipal() by: Principal): Promise<CreatedApiKey> {
    return this.keys.create(parseWith(CreateApiKeySchema, body, 'API key'), by);
  }

  @Get()
  @Requires('admin', 'all-fleets')
  async list(): Promise<ApiKey[]> {
    return this.keys.list();
  }

  /** Revokes a key (by id or name) at once, on every replica. */
  @Delete(':key')
  @Requires('admin', 'all-fleets')
  async revoke(@Param('key') key: string): Promise<ApiKey> {
    return this.keys.revoke(key);
  }
}
