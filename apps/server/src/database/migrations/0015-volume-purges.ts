import { Kysely } from 'kysely';

/**
 * Volume purges (docs/compose.md "Purging a volume"): one row per device and volume an operator asked to purge,
 * `pending` until the device answers `purged` or `refused` (a new request for the same volume replaces
 * the row). Removed with the device.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('volume_purges')
    .addColumn('device_uuid', 'varchar(36)', (c) =>
      c.notNull().references('devices.uuid').onDelete('cascade'),
    )
    .addColumn('volume', 'varchar(63)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('requested_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('requested_by', 'varchar(200)', (c) => c.notNull())
    .addColumn('done_at', 'varchar(32)')
    .addColumn('error', 'text')
    .addPrimaryKeyConstraint('volume_purges_pk', ['device_uuid', 'volume'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('volume_purges').execute();
}
