import { Kysely } from 'kysely';

/**
 * A rollout tells a device again that stays silent after its notice (`notice_due_at`, the time of the
 * next telling, null once it has been told `notice_tries` times in all): a notice can be lost between
 * broker and device, or between the server processes of a cluster, and the broker still reports it
 * sent.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('rollout_devices')
    .addColumn('notice_tries', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('rollout_devices').addColumn('notice_due_at', 'varchar(32)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('rollout_devices').dropColumn('notice_due_at').execute();
  await db.schema.alterTable('rollout_devices').dropColumn('notice_tries').execute();
}
