import { ForbiddenError, Principal } from '@ferry/protocol';
import { AccessService } from './access.service';
import { FleetScopeRepository } from './fleet-scope.repository';

const admin: Principal = { name: 'bootstrap', role: 'admin', keyId: null, fleetIds: null };
const scoped: Principal = { name: 'ci', role: 'deployer', keyId: 'k', fleetIds: ['fleet-a'] };

describe('AccessService.check', () => {
  const access = new AccessService({} as FleetScopeRepository);

  it('fails closed on a route that declares no role, even for the bootstrap admin', () => {
    expect(() => access.check(admin, undefined, null, 'GET /v1/new')).toThrow(ForbiddenError);
    expect(() => access.check(admin, undefined, null, 'GET /v1/new')).toThrow(/declares no role/);
  });

  it('holds a fleet-limited key to its fleets and out of server-wide routes', () => {
    expect(() =>
      access.check(scoped, { need: 'deployer', scope: { fleet: 'fleet' } }, 'fleet-a', 'x'),
    ).not.toThrow();
    expect(() =>
      access.check(scoped, { need: 'deployer', scope: { fleet: 'fleet' } }, 'fleet-b', 'x'),
    ).toThrow(/may not act on fleet fleet-b/);
    expect(() => access.check(scoped, { need: 'viewer', scope: 'all-fleets' }, null, 'x')).toThrow(
      /every fleet/,
    );
    expect(() => access.check(scoped, { need: 'admin', scope: { fleet: 'fleet' } }, 'fleet-a', 'x')).toThrow(
      /needs admin/,
    );
  });
});
