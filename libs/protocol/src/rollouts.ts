import { z } from 'zod';

/**
 * Rollout states (docs/rollouts.md). A rollout runs its batches in order; a batch is judged by whether
 * its devices end up running the release and stay healthy through the bake time.
 */
export const ROLLOUT_STATES = ['running', 'paused', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const BATCH_STATES = ['pending', 'running', 'baking', 'passed', 'failed', 'canceled'] as const;
export type BatchState = (typeof BATCH_STATES)[number];

export const ROLLOUT_DEVICE_STATES = [
  'pending',
  'notified',
  'updating',
  'verifying',
  'succeeded',
  'failed',
  'timed_out',
  'rolling_back',
  'rolled_back',
  'canceled',
] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

/** Device states that count against a batch's failure threshold. */
export const FAILED_DEVICE_STATES: readonly RolloutDeviceState[] = [
  'failed',
  'timed_out',
  'rolling_back',
  'rolled_back',
];

/** `1` (a device count) or `"10%"` (of the devices the rollout covers); cumulative. */
export const BatchSizeSchema = z.union([
  z.number().int().positive().max(1_000_000),
  z
    .string()
    .regex(/^\d{1,3}(\.\d{1,2})?%$/, 'a count or a percentage such as "10%"')
    .refine((v) => Number.parseFloat(v) > 0 && Number.parseFloat(v) <= 100, 'between 0% and 100%'),
]);
export type BatchSize = z.infer<typeof BatchSizeSchema>;

export const RolloutStrategySchema = z
  .object({
    /**
     * Cumulative batch ends: `[1, "10%", "50%", "100%"]` updates 1 device, then up to 10 % of the
     * devices, then up to 50 %, then all. A list ending below 100 % gets a last batch with the rest.
     */
    batches: z.array(BatchSizeSchema).min(1).max(100).default([1, '10%', '50%', '100%']),
    /** Seconds a batch must stay healthy after its last device came up before the next batch starts. */
    bakeSeconds: z
      .number()
      .min(0)
      .max(7 * 24 * 3600)
      .default(300),
    /** A batch whose failed devices exceed this share of its devices has failed. */
    maxFailurePercent: z.number().min(0).max(100).default(20),
    onFailure: z.enum(['pause', 'abort']).default('pause'),
    /** A notified device that does not report running the release within this time has timed out. */
    deviceTimeoutSeconds: z
      .number()
      .min(1)
      .max(30 * 24 * 3600)
      .default(1800),
    /**
     * `failed`: send each failed or timed-out device back to the release it ran; `batch`: also send the
     * whole batch back when the batch fails; `none`: leave devices where they are.
     */
    rollback: z.enum(['none', 'failed', 'batch']).default('failed'),
    /**
     * Before telling a batch, wait up to this long while deltas of the release are still being built,
     * so devices get deltas rather than full layers. 0: never wait (devices get what is ready).
     */
    waitForDeltasSeconds: z.number().min(0).max(3600).default(0),
    /** At most this many devices are told in any minute (unset: a whole batch at once). */
    maxDevicesPerMinute: z.number().int().positive().max(1_000_000).optional(),
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
}

export interface RolloutPlan {
  fleetId: string;
  releaseId: string;
  releaseVersion: number;
  strategy: RolloutStrategy;
  tagFilter: TagFilter | null;
  batches: { number: number; size: number }[];
  devices: PlannedDevice[];
  excluded: { pinned: string[]; upToDate: string[]; filteredOut: number };
  bytes: { projected: number; full: number };
}

export type DeviceCounts = Partial<Record<RolloutDeviceState, number>>;

export interface RolloutBatchView {
  number: number;
  state: BatchState;
  size: number;
  counts: DeviceCounts;
  failurePercent: number;
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
  total: number;
  batches: RolloutBatchView[];
  counts: DeviceCounts;
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
  updatedAt: string;
}

/** Query of `GET /v1/fleets/{fleet}/rollouts`. */
export const ListRolloutsQuerySchema = z
  .object({
    state: z.enum(ROLLOUT_STATES).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
  })
  .strict();
