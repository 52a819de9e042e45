import { z } from 'zod';
import { APP_METRIC_NAME } from './messages';
import {
  ROLLOUT_STRATEGY_DEFAULTS as DEFAULTS,
  HEALTH_COMPARISON_DEFAULTS,
  type HealthKind,
} from './rollout-defaults';
import { ROLLOUT_STATES, type BatchState, type RolloutDeviceState, type RolloutState } from './states';

/** `1` (a device count) or `"10%"` (of the devices the rollout covers); cumulative. */
export const BatchSizeSchema = z.union([
  z.number().int().positive().max(1_000_000),
  z
    .string()
    .regex(/^\d{1,3}(\.\d{1,2})?%$/, 'a count or a percentage such as "10%"')
    .refine((v) => Number.parseFloat(v) > 0 && Number.parseFloat(v) <= 100, 'between 0% and 100%'),
]);
export type BatchSize = z.infer<typeof BatchSizeSchema>;

/**
 * Judging a baking batch against the rollout's devices still on their old release (docs/rollouts.md):
 * when the share of updated devices that restarted, failed a health check, went offline, reported an
 * error or counted an app metric up is larger than the control group's by more than `marginPercent`
 * points and Fisher's exact test finds the difference significant, the batch fails.
 */
export const HealthComparisonSchema = z
  .object({
    /** What a batch that is worse than its control group does to the rollout. */
    onWorse: z.enum(['pause', 'abort']).default(HEALTH_COMPARISON_DEFAULTS.onWorse),
    /** Percentage points by which the updated group's share must exceed the control group's. */
    marginPercent: z.number().min(0).max(100).default(HEALTH_COMPARISON_DEFAULTS.marginPercent),
    /** The chance of failing a batch that is not worse, over all the kinds compared (Holm). */
    alpha: z.number().min(0.0001).max(0.2).default(HEALTH_COMPARISON_DEFAULTS.alpha),
    /** Fewest affected updated devices that can make a kind worse: one device alone is never enough. */
    minAffected: z.number().int().min(1).max(1000).default(HEALTH_COMPARISON_DEFAULTS.minAffected),
    /** App metrics (counters in the devices' state reports) compared as well. */
    metrics: z.array(z.string().regex(APP_METRIC_NAME)).max(8).default([]),
  })
  .strict();
export type HealthComparison = z.infer<typeof HealthComparisonSchema>;

export const RolloutStrategySchema = z
  .object({
    /**
     * Cumulative batch ends: `[1, "10%", "50%", "100%"]` updates 1 device, then up to 10 % of the
     * devices, then up to 50 %, then all. A list ending below 100 % gets a last batch with the rest.
     */
    batches: z
      .array(BatchSizeSchema)
      .min(1)
      .max(100)
      .default(() => [...DEFAULTS.batches] as BatchSize[]),
    /**
     * Batch sizes by exponential ramp instead of `batches` (which is then ignored), like AWS IoT Jobs'
     * rate increase: batch k (from 0) holds `base × factor^k` devices rounded up, at most `max`, until
     * every device has a batch; past 100 batches the last one takes the rest.
     */
    ramp: z
      .object({
        base: z.number().int().min(1).max(1_000_000),
        factor: z.number().min(1).max(10),
        max: z.number().int().min(1).max(1_000_000).optional(),
      })
      .strict()
      .refine((r) => r.max === undefined || r.max >= r.base, 'ramp.max must be at least ramp.base')
      .optional(),
    /**
     * Start at this time (ISO 8601 with a zone, e.g. `2026-06-01T02:00:00+02:00`) instead of now: the
     * rollout is `scheduled` until then. At most a year ahead; a time already past starts at once.
     */
    startAt: z.string().datetime({ offset: true }).optional(),
    /** Seconds a batch must stay healthy after its last device came up before the next batch starts. */
    bakeSeconds: z
      .number()
      .min(0)
      .max(7 * 24 * 3600)
      .default(DEFAULTS.bakeSeconds),
    /** A batch whose failed devices exceed this share of its devices has failed. */
    maxFailurePercent: z.number().min(0).max(100).default(DEFAULTS.maxFailurePercent),
    onFailure: z.enum(['pause', 'abort']).default(DEFAULTS.onFailure),
    /** A notified device that does not report running the release within this time has timed out. */
    deviceTimeoutSeconds: z
      .number()
      .min(1)
      .max(30 * 24 * 3600)
      .default(DEFAULTS.deviceTimeoutSeconds),
    /**
     * `failed`: send each failed or timed-out device back to the release it ran; `batch`: also send the
     * whole batch back when the batch fails; `none`: leave devices where they are.
     */
    rollback: z.enum(['none', 'failed', 'batch']).default(DEFAULTS.rollback),
    /**
     * Before telling a batch, wait up to this long while deltas of the release are still being built,
     * so devices get deltas rather than full layers. 0: never wait (devices get what is ready).
     */
    waitForDeltasSeconds: z.number().min(0).max(3600).default(DEFAULTS.waitForDeltasSeconds),
    /** At most this many devices are told in any minute (unset: a whole batch at once). */
    maxDevicesPerMinute: z.number().int().positive().max(1_000_000).optional(),
    /**
     * Picks which devices go in which batch (online devices first, then in an order drawn from this
     * seed), so the same devices are not always the canaries. Unset: the server draws one and stores
     * it with the rollout; the same seed over the same devices gives the same plan (a dry run's seed
     * passed to the start gets exactly the plan that was shown).
     */
    seed: z.number().int().min(0).max(2_147_483_647).optional(),
    /** Judge each baking batch against devices still on the old release (unset: not judged). */
    healthComparison: HealthComparisonSchema.optional(),
  })
  .strict();
export type RolloutStrategy = z.infer<typeof RolloutStrategySchema>;

export const TagFilterSchema = z
  .object({ name: z.string().min(1).max(64), value: z.string().max(256).optional() })
  .strict();
export type TagFilter = z.infer<typeof TagFilterSchema>;

/** Body of `POST /v1/fleets/{fleet}/rollouts`. */
export const CreateRolloutSchema = z
  .object({
    releaseId: z.string().min(1).max(64),
    strategy: RolloutStrategySchema.default(RolloutStrategySchema.parse({})),
    tagFilter: TagFilterSchema.optional(),
    /** Only plan: nothing is stored and no device is told anything. */
    dryRun: z.boolean().default(false),
  })
  .strict();
export type CreateRollout = z.infer<typeof CreateRolloutSchema>;

/** Body of `PATCH /v1/fleets/{fleet}`: the fleet's rollout settings. */
export const FleetSettingsSchema = z
  .object({
    /** Start a rollout with `defaultStrategy` whenever a release is pushed to the fleet. */
    trackLatest: z.boolean().optional(),
    defaultStrategy: RolloutStrategySchema.optional(),
  })
  .strict();
export type FleetSettingsInput = z.infer<typeof FleetSettingsSchema>;

export interface FleetRolloutSettings {
  fleetId: string;
  trackLatest: boolean;
  defaultStrategy: RolloutStrategy;
}

/** The device tag that keeps a device out of every rollout (any value except `false`). */
export const PINNED_TAG = 'pinned';

/** Whether a device's tags pin it to the release it runs. */
export function isPinned(tags: Record<string, string>): boolean {
  return PINNED_TAG in tags && tags[PINNED_TAG] !== 'false';
}

export type LayerChoiceKind = 'delta' | 'full';

/** What one device would download for the rollout. */
export interface PlannedDevice {
  uuid: string;
  name: string;
  batch: number;
  fromReleaseId: string | null;
  online: boolean;
  /** Bytes `GET /v1/device/target` would send now (ready deltas, full gzip'd layers elsewhere). */
  projectedBytes: number;
  /** What the gzip'd layers the device lacks would cost. */
  fullBytes: number;
  layers: { diffId: string; kind: LayerChoiceKind; size: number }[];
  /**
   * When the device would be done were it told now, under its update policy (docs/rollouts.md
   * "Maintenance windows and metered links"): its download starts when its download window opens and
   * takes `projectedBytes` at its rate cap, its install waits for its maintenance window. Null when no
   * policy limits it (it is then as fast as its link).
   */
  doneBy: string | null;
}

export interface RolloutPlan {
  fleetId: string;
  releaseId: string;
  releaseVersion: number;
  strategy: RolloutStrategy;
  tagFilter: TagFilter | null;
  /** `doneBy`: the latest `doneBy` of the batch's devices (null when no policy limits any of them). */
  batches: { number: number; size: number; doneBy: string | null }[];
  devices: PlannedDevice[];
  excluded: { pinned: string[]; upToDate: string[]; filteredOut: number };
  bytes: { projected: number; full: number };
}

export type DeviceCounts = Partial<Record<RolloutDeviceState, number>>;

/** One group's figures for one kind of event over the comparison window. */
export interface HealthGroupFigure {
  /** Devices that had at least one event of this kind in the window. */
  affected: number;
  /** Events of this kind in all (restarts, offline transitions, metric increases…). */
  events: number;
  /** Wilson 95 % interval of the affected share, in percent. */
  low: number;
  high: number;
}

/** One kind of event compared: both groups, the difference, and the test. */
export interface HealthKindComparison {
  kind: HealthKind;
  updated: HealthGroupFigure;
  control: HealthGroupFigure;
  /** Affected share of the updated group minus the control group's, in percentage points. */
  differencePercent: number;
  /** One-sided Fisher exact test: the chance of a split at least this lopsided if both were alike. */
  pValue: number;
  /** The level `pValue` had to be under (Holm's step for this kind), or null when it was not reached. */
  threshold: number | null;
  /** Worse by more than the margin, significant, and at least `minAffected` updated devices affected. */
  worse: boolean;
}

/**
 * A batch judged against its control group over one window. `worse`: at least one kind is worse;
 * `ok`: none is; `no-control`/`no-updated`: one group is empty, nothing was judged.
 */
export interface HealthVerdict {
  verdict: 'worse' | 'ok' | 'no-control' | 'no-updated';
  /** True while the batch still bakes (interim figures, not acted on). */
  interim: boolean;
  from: string;
  to: string;
  marginPercent: number;
  alpha: number;
  minAffected: number;
  updated: { devices: number };
  control: { devices: number };
  kinds: HealthKindComparison[];
  /** One line: what was found. */
  summary: string;
}

export interface RolloutBatchView {
  number: number;
  state: BatchState;
  size: number;
  counts: DeviceCounts;
  failurePercent: number;
  /** The control-group verdict: stored when the bake ended, interim while it bakes; null otherwise. */
  health: HealthVerdict | null;
  startedAt: string | null;
  bakeUntil: string | null;
  finishedAt: string | null;
}

export interface RolloutFailure {
  uuid: string;
  name: string;
  batch: number;
  state: RolloutDeviceState;
  reason: string | null;
  at: string;
}

export interface RolloutView {
  id: string;
  fleetId: string;
  releaseId: string;
  releaseVersion: number;
  state: RolloutState;
  /** Why the rollout paused, aborted or completed. */
  reason: string | null;
  trigger: 'manual' | 'track-latest';
  strategy: RolloutStrategy;
  tagFilter: TagFilter | null;
  currentBatch: number;
  /** Devices the rollout covers: planned ones and late joiners, less those deprovisioned meanwhile. */
  total: number;
  batches: RolloutBatchView[];
  counts: DeviceCounts;
  /** Devices deprovisioned while the rollout ran: left out of `total`, `counts` and batch sizes. */
  deprovisioned: number;
  /** Devices waiting for their download window, or downloaded and waiting for their maintenance window. */
  waitingForWindow: number;
  failures: RolloutFailure[];
  /**
   * `projected`: planned download bytes; `sent`: bytes devices reported downloading (state reports);
   * `full`: what full gzip'd layers would have cost.
   */
  bytes: { projected: number; sent: number; full: number };
  /** Counts by device state over time (one sample per change). */
  history: { at: string; counts: DeviceCounts }[];
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export interface RolloutDeviceView {
  uuid: string;
  name: string;
  batch: number;
  state: RolloutDeviceState;
  fromReleaseId: string | null;
  projectedBytes: number;
  fullBytes: number;
  bytesSent: number;
  reason: string | null;
  /** When a notified device that is not yet running the release times out (null once it is judged). */
  deadline: string | null;
  updatedAt: string;
}

/** Query of `GET /v1/fleets/{fleet}/rollouts`. */
export const ListRolloutsQuerySchema = z
  .object({
    state: z.enum(ROLLOUT_STATES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
  })
  .strict();
