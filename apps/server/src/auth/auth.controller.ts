import { Controller, Delete, Get, HttpCode } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { BootstrapTokenState, Principal } from '@ferry/protocol';
import { CurrentPrincipal, Requires } from './auth.decorators';
import { ApiKeysService } from './api-keys.service';

@ApiTags('auth')
@ApiBearerAuth()
@Controller('v1/auth')
export class AuthController {
  constructor(private readonly keys: ApiKeysService) {}

  /** Who the token is: `ferry login` and the dashboard's sign-in call this (the audit log records it). */
  @Get('whoami')
  @Requires('signed-in', 'own-fleets')
  whoami(@CurrentPrincipal() principal: Principal): Principal {
    return principal;
  }

  @Get('bootstrap-token')
  @Requires('admin', 'all-fleets')
  async bootstrapToken(): Promise<BootstrapTokenState> {
    return { enabled: await this.keys.bootstrapEnabled() };
  }

  /** Turns the bootstrap admin token off (409 until a working admin API key exists). */
  @Delete('bootstrap-token')
  @HttpCode(204)
  @Requires('admin', 'all-fleets')
  async disableBootstrapToken(): Promise<void> {
    await this.keys.disableBootstrap();
  }
}
