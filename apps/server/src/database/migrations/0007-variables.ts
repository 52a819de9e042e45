import { Kysely, sql } from 'kysely';

/**
 * Configuration variables (docs/variables.md) at four levels: fleet, fleet+service, device,
 * device+service (`device_uuid` and `service` null where a level has none). One row per name and
 * scope, which a unique index on the scope (nulls as '') enforces on SQLite and PostgreSQL alike.
 * `fleets.variables_revision` and `devices.variables_revision` grow with every change at their levels
 * (a device's variables version is their sum); `devices.variables_version` is what the device reports
 * running.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('variables')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('device_uuid', 'varchar(36)', (c) => c.references('devices.uuid').onDelete('cascade'))
    .addColumn('service', 'varchar(63)')
    .addColumn('name', 'varchar(128)', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('secret', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await sql`create unique index variables_scope_name
    on variables (fleet_id, (coalesce(device_uuid, '')), (coalesce(service, '')), name)`.execute(db);
  await db.schema.createIndex('variables_device').on('variables').column('device_uuid').execute();
  await db.schema
    .alterTable('fleets')
    .addColumn('variables_revision', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('devices')
    .addColumn('variables_revision', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('devices').addColumn('variables_version', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('devices').dropColumn('variables_version').execute();
  await db.schema.alterTable('devices').dropColumn('variables_revision').execute();
  await db.schema.alterTable('fleets').dropColumn('variables_revision').execute();
  await db.schema.dropTable('variables').execute();
}
