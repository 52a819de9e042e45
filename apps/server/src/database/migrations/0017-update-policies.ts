import { Kysely } from 'kysely';

/**
 * Update policies (docs/rollouts.md "Maintenance windows and metered links"): per fleet, tag value or
 * device, the weekly windows installs and downloads may run in and a download rate cap. `scope` is
 * `fleet`, `tag` or `device`; `scope_key` is '' for the fleet, `name=value` for a tag, the device's UUID
 * for a device. Window lists are JSON arrays of texts; a null column is "not set at this level".
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('update_policies')
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('scope', 'varchar(8)', (c) => c.notNull())
    .addColumn('scope_key', 'varchar(400)', (c) => c.notNull())
    .addColumn('maintenance_windows', 'text')
    .addColumn('download_windows', 'text')
    .addColumn('download_rate', 'bigint')
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('update_policies_pk', ['fleet_id', 'scope', 'scope_key'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('update_policies').execute();
}
