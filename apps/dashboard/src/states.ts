import { ROLLOUT_DEVICE_STATES, type RolloutDeviceState } from '@ferry/protocol/wire';

/** Device states in display order (the protocol's own order), with their colour class. */
export const DEVICE_STATES: readonly RolloutDeviceState[] = ROLLOUT_DEVICE_STATES;

export const STATE_COLOURS: Record<RolloutDeviceState, string> = {
  pending: '#b8c0cc',
  notified: '#8fb3e8',
  updating: '#3b82f6',
  verifying: '#14b8a6',
  succeeded: '#16a34a',
  failed: '#dc2626',
  timed_out: '#f59e0b',
  // Distinct from rolled_back: one is still moving, the other is done.
  rolling_back: '#ec4899',
  rolled_back: '#7c3aed',
  canceled: '#6b7280',
};

export function label(state: string): string {
  return state.replace(/_/g, ' ');
}
