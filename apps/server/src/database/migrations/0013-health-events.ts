import { Kysely } from 'kysely';

/**
 * The control-group comparison (docs/rollouts.md): what devices did that counts against a release
 * (restarts, failed health checks, offline transitions, errors, app metric increases) as timed rows,
 * the app metrics each device last reported (the baseline their increases are counted from), and the
 * verdict each batch got when its bake ended.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_health_events')
    .addColumn('device_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('kind', 'varchar(48)', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('device_health_events_device_at')
    .on('device_health_events')
    .columns(['device_uuid', 'at'])
    .execute();
  await db.schema.alterTable('devices').addColumn('metrics', 'text').execute();
  await db.schema.alterTable('rollout_batches').addColumn('health', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('rollout_batches').dropColumn('health').execute();
  await db.schema.alterTable('devices').dropColumn('metrics').execute();
  await db.schema.dropTable('device_health_events').execute();
}
