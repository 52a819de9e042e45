import { Migration } from 'kysely';
import * as initial from './0001-initial';
import * as deviceState from './0002-device-state';

/**
 * Every migration, in order. Add new ones at the end with the next number; never edit one that has
 * shipped.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
  '0002-device-state': deviceState,
};
