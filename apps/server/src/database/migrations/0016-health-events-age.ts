import { Kysely } from 'kysely';

/** Health events are pruned by age (`FERRY_HEALTH_EVENTS_DAYS`): an index on `at` keeps that a range delete. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('device_health_events_at').on('device_health_events').column('at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('device_health_events_at').execute();
}
