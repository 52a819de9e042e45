import { Kysely } from 'kysely';

/**
 * Signed device targets (docs/protocol.md "Signed targets"): `devices.target_version` grows with every
 * change of a device's target, in the same statement, so replicas sharing one database never hand out
 * a lower one; `devices.target_rollback` marks a target the operator (or a rollout's automatic rollback)
 * asked to be older. `target_keys` holds the server's online keys, numbered: the highest signs, the one
 * before it co-signs until the next rotation, so devices that pinned it learn the new one.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('devices')
    .addColumn('target_version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('devices')
    .addColumn('target_rollback', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createTable('target_keys')
    .addColumn('seq', 'integer', (c) => c.primaryKey())
    .addColumn('key_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('private_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('target_keys').execute();
  await db.schema.alterTable('devices').dropColumn('target_rollback').execute();
  await db.schema.alterTable('devices').dropColumn('target_version').execute();
}
