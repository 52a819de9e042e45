import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { UnauthenticatedError } from '@ferry/protocol';
import { DevicesService } from '../devices/devices.service';
import { AUDIENCE, Audience, FerryRequest } from './auth.decorators';
import { AdminTokenService } from './admin-token.service';

function bearer(request: Request): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/**
 * Deny by default: every route needs the admin token unless it says otherwise with `@Public()`,
 * `@DeviceOnly()` or `@OperatorOrDevice()`.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly adminToken: AdminTokenService,
    private readonly devices: DevicesService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const audience =
      this.reflector.getAllAndOverride<Audience | undefined>(AUDIENCE, [
        context.getHandler(),
        context.getClass(),
      ]) ?? 'operator';
    if (audience === 'public') return true;
    const request = context.switchToHttp().getRequest<Request & FerryRequest>();
    const token = bearer(request);
    if (!token) throw new UnauthenticatedError('missing "Authorization: Bearer <token>" header');
    if (audience !== 'device' && this.adminToken.matches(token)) return true;
    if (audience === 'operator') throw new UnauthenticatedError('invalid admin token');
    const source = request.ip ?? 'unknown';
    this.devices.failures.check(source, 'device authentication');
    const device = await this.devices.authenticate(token);
    if (!device) {
      this.devices.failures.fail(source);
      throw new UnauthenticatedError('invalid device API key');
    }
    request.device = { uuid: device.uuid, fleetId: device.fleetId };
    return true;
  }
}
