import type { RolloutDeviceState } from '@ferry/protocol';

/** Device states in display order, with their colour class. */
export const DEVICE_STATES: RolloutDeviceState[] = [
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
];

export const STATE_COLOURS: Record<RolloutDeviceState, string> = {
  pending: '#b8c0cc',
  notified: '#8fb3e8',
  updating: '#3b82f6',
  verifying: '#14b8a6',
  succeeded: '#16a34a',
  failed: '#dc2626',
  timed_out: '#f59e0b',
  rolling_back: '#a855f7',
  rolled_back: '#7c3aed',
  canceled: '#6b7280',
};

export function label(state: string): string {
  return state.replace(/_/g, ' ');
}
