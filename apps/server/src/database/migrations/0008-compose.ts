import { Kysely } from 'kysely';

/**
 * Compose releases (docs/compose.md): `fleet_bind_mounts`, host paths a fleet's releases may
 * bind-mount; `devices.services`, the per-service states of the device's last report (JSON).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').addColumn('services', 'text').execute();
  await db.schema
    .createTable('fleet_bind_mounts')
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('path', 'varchar(1024)', (c) => c.notNull())
    .addPrimaryKeyConstraint('fleet_bind_mounts_pk', ['fleet_id', 'path'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('fleet_bind_mounts').execute();
  await db.schema.alterTable('devices').dropColumn('services').execute();
}
