import { Kysely } from 'kysely';

/**
 * Drops `release_layers`: written with every release but never read. A release's layers live in its
 * signed manifest (`releases.manifest`), and layers themselves in `layers`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('release_layers_diff').ifExists().execute();
  await db.schema.dropTable('release_layers').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
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
