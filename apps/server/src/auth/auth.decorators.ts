import { SetMetadata, applyDecorators, createParamDecorator, ExecutionContext } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import type { Principal, RouteNeed } from '@ferry/protocol';

/** Who may call a route. Operator (an operator key or the bootstrap token) is the default. */
export type Audience = 'public' | 'operator' | 'device' | 'operator-or-device';
export const AUDIENCE = 'ferry:audience';
export const ROUTE_ACCESS = 'ferry:access';

/** Marks a route's audience for the guard and, as `x-ferry-audience`, in the OpenAPI document. */
const audience = (value: Audience): MethodDecorator & ClassDecorator =>
  applyDecorators(SetMetadata(AUDIENCE, value), ApiExtension('x-ferry-audience', value));

/** No authentication: health checks, device registration (which checks its own key). */
export const Public = (): MethodDecorator & ClassDecorator => audience('public');
/** Authenticated by a device API key. */
export const DeviceOnly = (): MethodDecorator & ClassDecorator => audience('device');
/** An operator key or a device key (blob downloads). */
export const OperatorOrDevice = (): MethodDecorator & ClassDecorator => audience('operator-or-device');

/**
 * Which fleet a route acts on, so a key limited to some fleets is held to them:
 * - `{ fleet: 'p' }`, `{ device: 'p' }`, `{ release: 'p' }`, `{ rollout: 'p' }`: the fleet named by,
 *   or owning the thing named by, route parameter `p`;
 * - `own-fleets`: the handler itself limits what it reads to the caller's fleets (listings);
 * - `all-fleets`: server-wide; only a key for every fleet may call it;
 * - `new-fleet`: creates a fleet (as `all-fleets`; the audit log files it under the new fleet).
 */
export type FleetScope =
  | { fleet: string }
  | { device: string }
  | { release: string }
  | { rollout: string }
  | 'own-fleets'
  | 'all-fleets'
  | 'new-fleet';

export interface RouteAccess {
  need: RouteNeed;
  scope: FleetScope;
}

/**
 * What an operator route needs: the role (docs/security.md has the table) and the fleet it acts on.
 * A route without it fails closed (403 for every key), and test/roles.e2e.ts finds it through the
 * `x-ferry-access` extension this adds to the OpenAPI document.
 */
export const Requires = (need: RouteNeed, scope: FleetScope): MethodDecorator & ClassDecorator =>
  applyDecorators(
    SetMetadata(ROUTE_ACCESS, { need, scope } satisfies RouteAccess),
    ApiExtension('x-ferry-access', { need, scope }),
  );

/** The device a request was authenticated as. */
export interface AuthenticatedDevice {
  uuid: string;
  fleetId: string;
}

/** What the guard and the audit log learn about a request on its way. */
export interface FerryRequest {
  device?: AuthenticatedDevice;
  principal?: Principal;
  /** The fleet the request acts on, when the route names one (for the audit log). */
  fleetId?: string | null;
  /** Why the request failed (set by the audit interceptor, never a secret: error messages only). */
  failure?: string;
  /** The id of what a request created (the audit log's target). */
  createdId?: string;
  ip?: string;
  id?: unknown;
}

/** Injects the authenticated device of a `@DeviceOnly()` route. */
export const CurrentDevice = createParamDecorator(
  (_data: unknown, context: ExecutionContext): AuthenticatedDevice => {
    const request = context.switchToHttp().getRequest<FerryRequest>();
    if (!request.device) throw new Error('CurrentDevice used on a route that is not device-authenticated');
    return request.device;
  },
);

/** Injects the operator a request was authenticated as. */
export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal => {
    const request = context.switchToHttp().getRequest<FerryRequest>();
    if (!request.principal)
      throw new Error('CurrentPrincipal used on a route that is not operator-authenticated');
    return request.principal;
  },
);
