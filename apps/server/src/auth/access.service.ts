import { Injectable } from '@nestjs/common';
import { ForbiddenError, Principal, roleSatisfies } from '@ferry/protocol';
import { FleetScope, RouteAccess } from './auth.decorators';
import { FleetScopeRepository } from './fleet-scope.repository';

/** Decides whether an operator may call a route, by its declared role and fleet scope. */
@Injectable()
export class AccessService {
  constructor(private readonly scopes: FleetScopeRepository) {}

  /** The fleet a route's parameters name (null: none, or a subject that does not exist). */
  async fleetOf(scope: FleetScope, params: Record<string, unknown>): Promise<string | null> {
    if (typeof scope === 'string') return null;
    if ('fleet' in scope) return this.lookup(params[scope.fleet], (v) => this.scopes.fleetByIdOrSlug(v));
    if ('device' in scope) return this.lookup(params[scope.device], (v) => this.scopes.fleetOfDevice(v));
    if ('release' in scope) return this.lookup(params[scope.release], (v) => this.scopes.fleetOfRelease(v));
    return this.lookup(params[scope.rollout], (v) => this.scopes.fleetOfRollout(v));
  }

  private async lookup(value: unknown, find: (v: string) => Promise<string | null>): Promise<string | null> {
    return typeof value !== 'string' || value.length > 200 ? null : find(value);
  }

  /**
   * Throws {@link ForbiddenError} unless `principal` may call a route declared with `access`, acting
   * on fleet `fleetId`. A route without a declaration is closed to every key: fail closed.
   */
  check(principal: Principal, access: RouteAccess | undefined, fleetId: string | null, what: string): void {
    if (!access)
      throw new ForbiddenError(
        `${what} declares no role, so no key may call it (a server bug: please report it)`,
      );
    if (!roleSatisfies(principal.role, access.need))
      throw new ForbiddenError(
        `${principal.role} key ${principal.name} may not ${what}: it needs ${access.need}`,
        {
          need: access.need,
          role: principal.role,
        },
      );
    if (principal.fleetIds === null) return;
    if (access.scope === 'all-fleets' || access.scope === 'new-fleet')
      throw new ForbiddenError(
        `key ${principal.name} is limited to some fleets; ${what} needs a key for every fleet`,
      );
    // A subject that does not exist has no fleet: the route itself answers 404.
    if (fleetId !== null && !principal.fleetIds.includes(fleetId))
      throw new ForbiddenError(`key ${principal.name} may not act on fleet ${fleetId}`);
  }
}
