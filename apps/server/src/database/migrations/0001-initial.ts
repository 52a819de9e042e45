import { Kysely, sql } from 'kysely';

/** Fleets, provisioning keys, devices, releases and their layers. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('fleets')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('slug', 'varchar(63)', (c) => c.notNull().unique())
    .addColumn('arch', 'varchar(16)', (c) => c.notNull())
    .addColumn('signing_public_key', 'text', (c) => c.notNull())
    .addColumn('signing_private_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('provisioning_keys')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('name', 'varchar(100)')
    .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('prefix', 'varchar(16)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('revoked_at', 'varchar(32)')
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('key_hash', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('device_type', 'varchar(64)')
    .addColumn('agent_version', 'varchar(64)')
    .addColumn('online', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_seen_at', 'varchar(32)')
    .addColumn('status', 'varchar(32)', (c) => c.notNull().defaultTo('registered'))
    .addColumn('release_id', 'varchar(36)')
    .addColumn('target_release_id', 'varchar(36)')
    .addColumn('tags', 'text', (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('devices_fleet').on('devices').column('fleet_id').execute();

  await db.schema
    .createTable('releases')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('note', 'varchar(500)')
    .addColumn('total_size', 'bigint', (c) => c.notNull())
    .addColumn('manifest', 'text', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addUniqueConstraint('releases_fleet_version', ['fleet_id', 'version'])
    .execute();

  await db.schema
    .createTable('layers')
    .addColumn('diff_id', 'varchar(71)', (c) => c.primaryKey())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('gzip_digest', 'varchar(71)', (c) => c.notNull())
    .addColumn('gzip_size', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('release_layers')
    .addColumn('release_id', 'varchar(36)', (c) => c.notNull().references('releases.id').onDelete('cascade'))
    .addColumn('service', 'varchar(63)', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('diff_id', 'varchar(71)', (c) => c.notNull().references('layers.diff_id'))
    .addPrimaryKeyConstraint('release_layers_pk', ['release_id', 'service', 'position'])
    .execute();
  await db.schema.createIndex('release_layers_diff').on('release_layers').column('diff_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['release_layers', 'layers', 'releases', 'devices', 'provisioning_keys', 'fleets']) {
    await db.schema.dropTable(table).execute();
  }
}
