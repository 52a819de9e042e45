import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuditModule } from '../audit/audit.module';
import { DevicesModule } from '../devices/devices.module';
import { AccessService } from './access.service';
import { AdminTokenService } from './admin-token.service';
import { ApiKeysController } from './api-keys.controller';
import { ApiKeysRepository } from './api-keys.repository';
import { ApiKeysService } from './api-keys.service';
import { AuthController } from './auth.controller';
import { AuthGuard } from './auth.guard';
import { PrincipalsService } from './principals.service';

@Global()
@Module({
  imports: [DevicesModule, AuditModule],
  controllers: [ApiKeysController, AuthController],
  providers: [
    AdminTokenService,
    ApiKeysRepository,
    ApiKeysService,
    PrincipalsService,
    AccessService,
    { provide: APP_GUARD, useClass: AuthGuard },
  ],
  exports: [AdminTokenService, PrincipalsService, AccessService],
})
export class AuthModule {}
