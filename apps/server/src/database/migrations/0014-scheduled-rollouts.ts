import { Kysely, sql } from 'kysely';

/**
 * A scheduled rollout (state `scheduled`, waiting for its `startAt`) is active too: the one-active-
 * rollout-per-fleet index now covers it, so a fleet cannot hold a scheduled and a running rollout.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A new name: SQLite prepares a statement against the schema a connection last read, so creating
  // the index under the name just dropped can fail on a connection that has not seen the drop.
  await sql`drop index rollouts_one_active_per_fleet`.execute(db);
  await sql`
    create unique index rollouts_one_active_or_scheduled_per_fleet
        on rollouts (fleet_id)
     where state in ('scheduled', 'running', 'paused')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index rollouts_one_active_or_scheduled_per_fleet`.execute(db);
  await sql`
    create unique index rollouts_one_active_per_fleet
        on rollouts (fleet_id)
     where state in ('running', 'paused')`.execute(db);
}
