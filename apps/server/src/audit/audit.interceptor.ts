import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Observable, tap } from 'rxjs';
import { FerryRequest, ROUTE_ACCESS, RouteAccess } from '../auth/auth.decorators';

/**
 * Tells the audit log what a request created: the `id` of the answer (a release, a rollout, a key's
 * id — never the key), and its fleet when the route named none (`fleetId` of the answer, or the new
 * fleet itself for a route that creates fleets).
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<FerryRequest>();
    const access = this.reflector.get<RouteAccess | undefined>(ROUTE_ACCESS, context.getHandler());
    return next.handle().pipe(
      tap((result: unknown) => {
        if (!request.principal || typeof result !== 'object' || result === null) return;
        const { id, fleetId } = result as { id?: unknown; fleetId?: unknown };
        if (typeof id === 'string') request.createdId = id;
        if (request.fleetId) return;
        if (access?.scope === 'new-fleet' && typeof id === 'string') request.fleetId = id;
        else if (typeof fleetId === 'string') request.fleetId = fleetId;
      }),
    );
  }
}
