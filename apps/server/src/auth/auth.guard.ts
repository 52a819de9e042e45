import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { UnauthenticatedError } from '@ferry/protocol';
import { AuditService } from '../audit/audit.service';
import { DevicesService } from '../devices/devices.service';
import { AccessService } from './access.service';
import { AUDIENCE, Audience, FerryRequest, ROUTE_ACCESS, RouteAccess } from './auth.decorators';
import { PrincipalsService } from './principals.service';

export function bearer(request: Request): string | null {
  const header = request.headers.authorization;
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/** Methods that change state: every one is audited, whatever its outcome. */
const CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** `ReleasesController.push` → `releases.push`. */
function actionOf(context: ExecutionContext): string {
  const feature = context.getClass().name.replace(/Controller$/, '');
  return `${feature.charAt(0).toLowerCase()}${feature.slice(1)}.${context.getHandler().name}`;
}

/**
 * Deny by default: every route needs an operator key (or the bootstrap admin token) unless it says
 * otherwise with `@Public()`, `@DeviceOnly()` or `@OperatorOrDevice()`; an operator route must declare
 * the role it needs with `@Requires`, or no key may call it. Refusals, sign-ins and every
 * state-changing operator request go to the audit log.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly principals: PrincipalsService,
    private readonly access: AccessService,
    private readonly audit: AuditService,
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
    const response = context.switchToHttp().getResponse<Response>();
    const token = bearer(request);
    const action = actionOf(context);
    if (!token) {
      if (audience === 'operator') this.audit.recordWhenDone(request, response, action);
      throw new UnauthenticatedError('missing "Authorization: Bearer <token>" header');
    }
    if (audience !== 'device') {
      const principal = await this.principals.authenticate(token);
      if (principal) {
        request.principal = principal;
        const access = this.reflector.getAllAndOverride<RouteAccess | undefined>(ROUTE_ACCESS, [
          context.getHandler(),
          context.getClass(),
        ]);
        request.fleetId = access ? await this.access.fleetOf(access.scope, request.params) : null;
        const audited = CHANGING.has(request.method) || action === 'auth.whoami';
        try {
          this.access.check(
            principal,
            access,
            request.fleetId,
            `${request.method} ${(request.route as { path?: string } | undefined)?.path ?? request.path}`,
          );
        } catch (error) {
          this.audit.recordWhenDone(request, response, action);
          throw error;
        }
        if (audited) this.audit.recordWhenDone(request, response, action);
        return true;
      }
      if (audience === 'operator') {
        this.audit.recordWhenDone(request, response, action);
        throw new UnauthenticatedError('invalid token: not a working operator key');
      }
    }
    const source = request.ip ?? 'unknown';
    await this.devices.checkFailures(source, 'device authentication');
    const device = await this.devices.authenticate(token);
    if (!device) {
      await this.devices.countFailure(source);
      throw new UnauthenticatedError('invalid device API key');
    }
    request.device = { uuid: device.uuid, fleetId: device.fleetId };
    return true;
  }
}
