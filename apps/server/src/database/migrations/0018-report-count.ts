import { Kysely } from 'kysely';

/**
 * `devices.report_count` grows by one with every device report written. A rollout step sums it over
 * the devices it watches to tell whether any report arrived since its last look: the newest
 * `state_at` cannot tell, because replicas flush reports on their own, and a report taken in earlier
 * can reach the database after a newer one of another device.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('devices')
    .addColumn('report_count', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').dropColumn('report_count').execute();
}
