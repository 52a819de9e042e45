import { Kysely } from 'kysely';

/**
 * Rollouts: the rollout, its batches, each device's part in it, samples of device counts over time
 * (the dashboard's chart) and each fleet's "track latest" setting. JSON columns are text.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('rollouts')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('release_id', 'varchar(36)', (c) => c.notNull().references('releases.id').onDelete('cascade'))
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
    .addColumn('strategy', 'text', (c) => c.notNull())
    .addColumn('tag_filter', 'text')
    .addColumn('current_batch', 'integer', (c) => c.notNull())
    .addColumn('projected_bytes', 'bigint', (c) => c.notNull())
    .addColumn('full_bytes', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('finished_at', 'varchar(32)')
    .execute();
  await db.schema.createIndex('rollouts_fleet').on('rollouts').columns(['fleet_id', 'created_at']).execute();
  await db.schema.createIndex('rollouts_state').on('rollouts').column('state').execute();

  await db.schema
    .createTable('rollout_batches')
    .addColumn('rollout_id', 'varchar(36)', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'varchar(32)')
    .addColumn('bake_until', 'varchar(32)')
    .addColumn('finished_at', 'varchar(32)')
    .addPrimaryKeyConstraint('rollout_batches_pk', ['rollout_id', 'number'])
    .execute();

  await db.schema
    .createTable('rollout_devices')
    .addColumn('rollout_id', 'varchar(36)', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('device_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('name', 'varchar(100)', (c) => c.notNull())
    .addColumn('batch', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('from_release_id', 'varchar(36)')
    .addColumn('projected_bytes', 'bigint', (c) => c.notNull())
    .addColumn('full_bytes', 'bigint', (c) => c.notNull())
    .addColumn('bytes_sent', 'bigint', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('notified_at', 'varchar(32)')
    .addColumn('deadline', 'varchar(32)')
    /** 1 once the device's target was set and the notice published for its current state. */
    .addColumn('notice_sent', 'integer', (c) => c.notNull())
    .addColumn('notice_release_id', 'varchar(36)')
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('rollout_devices_pk', ['rollout_id', 'device_uuid'])
    .execute();
  await db.schema
    .createIndex('rollout_devices_state')
    .on('rollout_devices')
    .columns(['rollout_id', 'state'])
    .execute();

  await db.schema
    .createTable('rollout_samples')
    .addColumn('rollout_id', 'varchar(36)', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('counts', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('rollout_samples_rollout')
    .on('rollout_samples')
    .columns(['rollout_id', 'at'])
    .execute();

  await db.schema
    .createTable('fleet_rollout_settings')
    .addColumn('fleet_id', 'varchar(36)', (c) => c.primaryKey().references('fleets.id').onDelete('cascade'))
    .addColumn('track_latest', 'integer', (c) => c.notNull())
    .addColumn('default_strategy', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [
    'fleet_rollout_settings',
    'rollout_samples',
    'rollout_devices',
    'rollout_batches',
    'rollouts',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
