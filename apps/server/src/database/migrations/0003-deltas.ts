import { Kysely } from 'kysely';

/** Layer deltas: one row per (ordered bases, target) pair, with the build state and result. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('deltas')
    .addColumn('key', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('bases', 'text', (c) => c.notNull())
    .addColumn('target_diff_id', 'varchar(71)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('digest', 'varchar(71)')
    .addColumn('size', 'bigint')
    .addColumn('target_size', 'bigint', (c) => c.notNull())
    .addColumn('target_gzip_size', 'bigint', (c) => c.notNull())
    .addColumn('encode_ms', 'integer')
    .addColumn('error', 'text')
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('deltas_target').on('deltas').column('target_diff_id').execute();
  await db.schema.createIndex('deltas_state').on('deltas').column('state').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('deltas').execute();
}
