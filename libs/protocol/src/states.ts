// Zod-free on purpose: the device agent and the dashboard bundle this file through the `wire` entry
// point (@ferry/protocol/wire); the schemas that validate these names import them from here.

/**
 * What a device reports about its update, in the order an update goes through (balena's
 * `update_status` and hawkBit's action states, merged): `registered` before any report, `idle` with
 * nothing to do, then download → install → start → `running`; or `failed`, `rolled_back`, or
 * `deferred` (an update lock or a download window holds it back).
 */
export const DEVICE_STATUSES = [
  'registered',
  'idle',
  'downloading',
  'downloaded',
  'installing',
  'starting',
  'running',
  'failed',
  'rolled_back',
  'deferred',
] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

/** Server-sent event types of `GET /v1/events`. Other features add theirs here. */
export const FERRY_EVENT_TYPES = [
  'device.state',
  'device.presence',
  'device.target',
  'device.deprovisioned',
  'rollout.updated',
  'variables.changed',
] as const;
export type FerryEventType = (typeof FERRY_EVENT_TYPES)[number];

/**
 * Rollout states (docs/rollouts.md). A rollout runs its batches in order; a batch is judged by whether
 * its devices end up running the release and stay healthy through the bake time.
 */
export const ROLLOUT_STATES = ['scheduled', 'running', 'paused', 'completed', 'aborted'] as const;
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
