// Zod-free: the dashboard shows the roles through @ferry/protocol/wire.

/**
 * Operator roles (docs/security.md): `admin` may do everything, including managing keys; `deployer`
 * pushes releases, runs rollouts and sets variables in its fleets; `viewer` reads its fleets;
 * `device-provisioner` only creates provisioning keys for its fleets.
 */
export const OPERATOR_ROLES = ['admin', 'deployer', 'viewer', 'device-provisioner'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** What a route needs; every operator route declares one (`@Requires`). */
export const ROUTE_NEEDS = ['viewer', 'deployer', 'provisioner', 'admin', 'signed-in'] as const;
export type RouteNeed = (typeof ROUTE_NEEDS)[number];

/** Which roles satisfy each need: the one table the guard, the tests and docs/security.md share. */
export const ROLES_FOR_NEED: Record<RouteNeed, readonly OperatorRole[]> = {
  'signed-in': OPERATOR_ROLES,
  viewer: ['admin', 'deployer', 'viewer'],
  deployer: ['admin', 'deployer'],
  provisioner: ['admin', 'device-provisioner'],
  admin: ['admin'],
};

/** Whether `role` may call a route that needs `need`. */
export function roleSatisfies(role: OperatorRole, need: RouteNeed): boolean {
  return ROLES_FOR_NEED[need].includes(role);
}
