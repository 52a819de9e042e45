import { Kysely, sql } from 'kysely';

/**
 * One active (running or paused) rollout per fleet, as a database constraint: a partial unique index
 * that SQLite and PostgreSQL both enforce, so two server processes creating a rollout for the same
 * fleet at the same instant cannot both succeed. Fleets that already had several active rollouts
 * (the check used to be per process) keep the newest; the others are aborted with a reason.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    update rollouts
       set state = 'aborted',
           reason = 'aborted by the upgrade to one active rollout per fleet: a newer one was active',
           finished_at = updated_at
     where state in ('running', 'paused')
       and exists (
         select 1 from rollouts newer
          where newer.fleet_id = rollouts.fleet_id
            and newer.state in ('running', 'paused')
            and (newer.created_at > rollouts.created_at
                 or (newer.created_at = rollouts.created_at and newer.id > rollouts.id)))`.execute(db);
  await sql`
    create unique index rollouts_one_active_per_fleet
        on rollouts (fleet_id)
     where state in ('running', 'paused')`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index rollouts_one_active_per_fleet`.execute(db);
}
