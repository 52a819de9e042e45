import { Migration } from 'kysely';
import * as initial from './0001-initial';
import * as deltas from './0003-deltas';
import * as deviceState from './0002-device-state';
import * as rollouts from './0004-rollouts';

/**
 * Every migration, in order. Add new ones at the end with the next number; never edit one that has
 * shipped.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
  '0003-deltas': deltas,
  '0002-device-state': deviceState,
  '0004-rollouts': rollouts,
};
