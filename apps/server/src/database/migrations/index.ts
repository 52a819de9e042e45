import { Migration } from 'kysely';
import * as initial from './0001-initial';

/**
 * Every migration, in order. Add new ones at the end with the next number; never edit one that has
 * shipped.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': initial,
};
