import { Kysely } from 'kysely';

/**
 * What devices report over MQTT: the release an update is working on, download progress, the last
 * error and when the state was received. `status`, `online` and `last_seen_at` exist since 0001.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').addColumn('update_release_id', 'varchar(64)').execute();
  await db.schema.alterTable('devices').addColumn('bytes_done', 'bigint').execute();
  await db.schema.alterTable('devices').addColumn('bytes_total', 'bigint').execute();
  await db.schema.alterTable('devices').addColumn('last_error', 'varchar(2000)').execute();
  await db.schema.alterTable('devices').addColumn('state_at', 'varchar(32)').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ['state_at', 'last_error', 'bytes_total', 'bytes_done', 'update_release_id']) {
    await db.schema.alterTable('devices').dropColumn(column).execute();
  }
}
