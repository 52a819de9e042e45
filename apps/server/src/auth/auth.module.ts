import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DevicesModule } from '../devices/devices.module';
import { AdminTokenService } from './admin-token.service';
import { AuthGuard } from './auth.guard';

@Global()
@Module({
  imports: [DevicesModule],
  providers: [AdminTokenService, { provide: APP_GUARD, useClass: AuthGuard }],
  exports: [AdminTokenService],
})
export class AuthModule {}
