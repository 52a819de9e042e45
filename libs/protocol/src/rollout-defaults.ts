// Zod-free like states.ts: the dashboard's rollout form bundles these through `@ferry/protocol/wire`.

/**
 * The strategy a rollout gets for every field left out: the API's schema, the CLI's flags and the
 * dashboard's form all take their defaults from here, so the three never disagree.
 */
export const ROLLOUT_STRATEGY_DEFAULTS = {
  batches: [1, '10%', '50%', '100%'] as (number | string)[],
  bakeSeconds: 300,
  maxFailurePercent: 20,
  onFailure: 'pause' as 'pause' | 'abort',
  deviceTimeoutSeconds: 1800,
  rollback: 'failed' as 'none' | 'failed' | 'batch',
  waitForDeltasSeconds: 0,
} as const;

/**
 * What `strategy.healthComparison` gets for every field left out (docs/rollouts.md, "Health against a
 * control group").
 */
export const HEALTH_COMPARISON_DEFAULTS = {
  onWorse: 'pause' as 'pause' | 'abort',
  marginPercent: 10,
  alpha: 0.05,
  minAffected: 2,
} as const;

/** What the control-group comparison counts per device: the built-in kinds, then `metric:{name}`. */
export const HEALTH_KINDS = ['restarts', 'healthChecks', 'offline', 'errors'] as const;
export type HealthKind = (typeof HEALTH_KINDS)[number] | `metric:${string}`;
