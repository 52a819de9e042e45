import { BatchState, ConflictError, RolloutDeviceState, RolloutState } from '@ferry/protocol';

/**
 * The one table of allowed state changes (docs/rollouts.md). Every change the engine or an operator
 * makes goes through {@link assertTransition}; a change not listed here is a bug, never written.
 */
export const ROLLOUT_TRANSITIONS: Record<RolloutState, readonly RolloutState[]> = {
  scheduled: ['running', 'aborted'],
  running: ['paused', 'completed', 'aborted'],
  paused: ['running', 'aborted'],
  completed: [],
  aborted: [],
};

export const BATCH_TRANSITIONS: Record<BatchState, readonly BatchState[]> = {
  pending: ['running', 'canceled'],
  running: ['baking', 'failed'],
  baking: ['passed', 'failed'],
  passed: [],
  failed: [],
  canceled: [],
};

export const DEVICE_TRANSITIONS: Record<RolloutDeviceState, readonly RolloutDeviceState[]> = {
  pending: ['notified', 'canceled'],
  notified: ['updating', 'verifying', 'failed', 'timed_out', 'rolling_back', 'canceled'],
  updating: ['verifying', 'failed', 'timed_out', 'rolling_back', 'canceled'],
  verifying: ['succeeded', 'failed', 'rolling_back', 'canceled'],
  succeeded: [],
  failed: ['rolling_back'],
  timed_out: ['rolling_back'],
  rolling_back: ['rolled_back'],
  rolled_back: [],
  canceled: [],
};

export type StateKind = 'rollout' | 'batch' | 'device';

const TABLES = {
  rollout: ROLLOUT_TRANSITIONS as Record<string, readonly string[]>,
  batch: BATCH_TRANSITIONS as Record<string, readonly string[]>,
  device: DEVICE_TRANSITIONS as Record<string, readonly string[]>,
};

export function canTransition(kind: StateKind, from: string, to: string): boolean {
  return TABLES[kind][from]?.includes(to) ?? false;
}

/** Throws a {@link ConflictError} (409 at the HTTP edge) when `from → to` is not allowed. */
export function assertTransition(kind: StateKind, from: string, to: string): void {
  if (!canTransition(kind, from, to)) throw new ConflictError(`a ${kind} cannot go from ${from} to ${to}`);
}

export function isTerminalRollout(state: RolloutState): boolean {
  return ROLLOUT_TRANSITIONS[state].length === 0;
}

/** Device states waiting for the device to come up on the release. */
export const IN_FLIGHT: readonly RolloutDeviceState[] = ['notified', 'updating'];
/** Device states the engine still watches. */
export const WATCHED: readonly RolloutDeviceState[] = ['notified', 'updating', 'verifying', 'rolling_back'];
