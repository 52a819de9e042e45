import { Logger } from '@nestjs/common';
import { Kysely, Migrator, PostgresDialect } from 'kysely';
import { Pool, types } from 'pg';
import { FerryConfig } from '../config/config';
import { Database } from './database.types';
import { MIGRATIONS } from './migrations';
import { BusyTolerantSqliteDialect } from './sqlite-dialect';

/** Opens the configured database: a SQLite file by default, PostgreSQL when DATABASE_URL says so. */
export function openDatabase(database: FerryConfig['database']): Kysely<Database> {
  if (database.kind === 'postgres') {
    // bigint columns hold byte counts well below 2^53: read them as numbers, not strings.
    types.setTypeParser(types.builtins.INT8, (value) => Number(value));
    const pool = new Pool({ connectionString: database.url, max: 10 });
    // PostgreSQL may end an idle connection (a restart, a failover, pg_terminate_backend): the pool
    // drops it and opens another for the next query. Unheard, its error would end the process.
    pool.on('error', (error) =>
      new Logger('Database').warn(
        `PostgreSQL closed an idle connection (${error.message}); it will be replaced`,
      ),
    );
    return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  }
  return new Kysely<Database>({
    dialect: new BusyTolerantSqliteDialect({
      file: database.file,
      busyTimeoutMs: database.busyTimeoutMs,
      onWalUnavailable: (mode) =>
        new Logger('Database').warn(
          `SQLite could not switch ${database.file} to WAL mode (journal mode: ${mode}); reads will wait ` +
            'while another connection writes. Keep DATA_DIR on a local filesystem.',
        ),
    }),
  });
}

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new Error(
      `database migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`,
    );
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
