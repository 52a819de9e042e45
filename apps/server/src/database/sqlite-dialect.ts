import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import SqliteDatabase from 'better-sqlite3';
import {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  QueryCompiler,
  QueryResult,
  SelectQueryNode,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import type { Kysely } from 'kysely';
import { DatabaseBusyError } from '@ferry/protocol';

/**
 * Why this exists: better-sqlite3 is synchronous, so SQLite's own busy handler (`busy_timeout`)
 * sleeps on the event loop. With Kysely's stock driver, one write waiting for a lock another
 * process holds froze HTTP, MQTT and every timer for up to the busy timeout, again for each
 * queued write. Here SQLite never sleeps (`busy_timeout = 0`); a statement refused with
 * SQLITE_BUSY is retried from a timer with backoff, so the process keeps serving while it waits.
 *
 * - Two handles on the file. Read-only statements outside a transaction run on the reader at once:
 *   in WAL mode readers are never blocked by a writer, even one that holds `BEGIN EXCLUSIVE`.
 * - Writes and transactions take turns, first come first served, on the writer handle (one lane),
 *   so writes keep the order they were issued in and no statement joins another's transaction.
 * - A transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up front, so SQLITE_BUSY
 *   can only happen at `BEGIN` (safe to retry), never halfway through its statements.
 * - A statement that has waited `busyTimeoutMs` in all (its turn in the lane included) fails with
 *   {@link DatabaseBusyError}, which HTTP answers 503 with Retry-After.
 */
export interface SqliteDialectOptions {
  file: string;
  /** Longest a statement waits for another process's lock before {@link DatabaseBusyError}. */
  busyTimeoutMs: number;
  /** Told once when the file cannot be put in WAL mode (readers may then wait for writers too). */
  onWalUnavailable?: (journalMode: string) => void;
}

/** Longest single pause between two attempts: bounds how late a released lock is noticed. */
const MAX_BACKOFF_MS = 50;

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** Runs `attempt` until it does not fail with SQLITE_BUSY, pausing between tries without blocking. */
async function whenNotBusy<T>(attempt: () => T, deadline: number, limitMs: number): Promise<T> {
  for (let pause = 1; ; pause = Math.min(pause * 2, MAX_BACKOFF_MS)) {
    try {
      return attempt();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new DatabaseBusyError(
          `the database is locked by another process and stayed locked for ${limitMs} ms ` +
            '(FERRY_DB_BUSY_TIMEOUT_MS); nothing was written, try again',
          Math.max(1, Math.ceil(limitMs / 1000)),
        );
      }
      await sleep(Math.min(pause, left));
    }
  }
}

/** Statements kept prepared per handle: preparing the same SQL again on every call was a sixth of a connect storm's CPU. */
const CACHED_STATEMENTS = 256;

/**
 * Prepared statements of one handle by SQL text, least recently used dropped first. Only for `all`
 * and `run`, which finish before they return; a statement being iterated is busy, so streams prepare
 * their own.
 */
class StatementCache {
  private readonly statements = new Map<string, SqliteDatabase.Statement>();

  constructor(private readonly handle: SqliteDatabase.Database) {}

  get(sql: string): SqliteDatabase.Statement {
    let statement = this.statements.get(sql);
    if (statement) this.statements.delete(sql);
    else statement = this.handle.prepare(sql);
    this.statements.set(sql, statement);
    if (this.statements.size > CACHED_STATEMENTS) {
      const oldest = this.statements.keys().next().value as string;
      this.statements.delete(oldest);
    }
    return statement;
  }
}

/** A first-come-first-served lock: `acquire()` resolves with the function that releases it. */
class Lane {
  private tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const turn = this.tail.then(() => release);
    this.tail = this.tail.then(() => held);
    return turn;
  }
}

function resultOf(statement: SqliteDatabase.Statement, parameters: readonly unknown[]): QueryResult<unknown> {
  if (statement.reader) return { rows: statement.all(parameters) };
  const { changes, lastInsertRowid } = statement.run(parameters);
  return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
}

async function savepointCommand(
  connection: DatabaseConnection,
  command: string,
  name: string,
): Promise<void> {
  if (!/^\w+$/.test(name)) throw new Error(`not a savepoint name: ${name}`);
  await connection.executeQuery(CompiledQuery.raw(`${command} ${name}`));
}

class SqliteSession implements DatabaseConnection {
  /** Set between BEGIN and COMMIT/ROLLBACK: the lane is held and every statement runs on the writer. */
  private releaseLane: (() => void) | null = null;

  constructor(private readonly driver: BusyTolerantSqliteDriver) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const { sql, parameters } = query;
    const { options } = this.driver.handles();
    const { reader, writer } = this.driver.statements();
    const deadline = Date.now() + options.busyTimeoutMs;
    const wait = <T>(attempt: () => T): Promise<T> => whenNotBusy(attempt, deadline, options.busyTimeoutMs);
    if (this.releaseLane) return resultOf(writer.get(sql), parameters) as QueryResult<R>;
    const onReader = await wait(() => reader.get(sql));
    if (onReader.readonly) return (await wait(() => resultOf(onReader, parameters))) as QueryResult<R>;
    const release = await this.driver.lane.acquire();
    try {
      return (await wait(() => resultOf(writer.get(sql), parameters))) as QueryResult<R>;
    } finally {
      release();
    }
  }

  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(query.query)) throw new Error('SQLite streams only select queries');
    const { reader, writer, options } = this.driver.handles();
    const handle = this.releaseLane ? writer : reader;
    const statement = await whenNotBusy(
      () => handle.prepare(query.sql),
      Date.now() + options.busyTimeoutMs,
      options.busyTimeoutMs,
    );
    for (const row of statement.iterate(query.parameters)) yield { rows: [row as R] };
  }

  async begin(): Promise<void> {
    const release = await this.driver.lane.acquire();
    const { writer, options } = this.driver.handles();
    try {
      await whenNotBusy(
        () => writer.exec('BEGIN IMMEDIATE'),
        Date.now() + options.busyTimeoutMs,
        options.busyTimeoutMs,
      );
    } catch (error) {
      release();
      throw error;
    }
    this.releaseLane = release;
  }

  end(statement: 'COMMIT' | 'ROLLBACK'): void {
    const release = this.releaseLane;
    const { writer } = this.driver.handles();
    try {
      // COMMIT under WAL only appends to the log and cannot meet SQLITE_BUSY once BEGIN IMMEDIATE won.
      if (writer.inTransaction) writer.exec(statement);
    } finally {
      this.releaseLane = null;
      release?.();
    }
  }
}

class BusyTolerantSqliteDriver implements Driver {
  readonly lane = new Lane();
  private reader: SqliteDatabase.Database | null = null;
  private writer: SqliteDatabase.Database | null = null;
  private cached: { reader: StatementCache; writer: StatementCache } | null = null;

  constructor(private readonly options: SqliteDialectOptions) {}

  handles(): {
    reader: SqliteDatabase.Database;
    writer: SqliteDatabase.Database;
    options: SqliteDialectOptions;
  } {
    if (!this.reader || !this.writer) throw new Error('the SQLite database is closed');
    return { reader: this.reader, writer: this.writer, options: this.options };
  }

  statements(): { reader: StatementCache; writer: StatementCache } {
    if (!this.cached) throw new Error('the SQLite database is closed');
    return this.cached;
  }

  async init(): Promise<void> {
    mkdirSync(dirname(this.options.file), { recursive: true });
    const deadline = Date.now() + this.options.busyTimeoutMs;
    const open = (): SqliteDatabase.Database => {
      const handle = new SqliteDatabase(this.options.file);
      handle.pragma('busy_timeout = 0');
      handle.pragma('foreign_keys = ON');
      handle.pragma('synchronous = NORMAL');
      return handle;
    };
    this.writer = open();
    const writer = this.writer;
    const mode = await whenNotBusy(
      () => writer.pragma('journal_mode = WAL', { simple: true }) as string,
      deadline,
      this.options.busyTimeoutMs,
    );
    if (mode !== 'wal') this.options.onWalUnavailable?.(mode);
    this.reader = open();
    this.cached = { reader: new StatementCache(this.reader), writer: new StatementCache(writer) };
  }

  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(new SqliteSession(this));
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as SqliteSession).begin();
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return Promise.resolve().then(() => (connection as SqliteSession).end('COMMIT'));
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return Promise.resolve().then(() => (connection as SqliteSession).end('ROLLBACK'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await savepointCommand(connection, 'savepoint', name);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await savepointCommand(connection, 'rollback to', name);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await savepointCommand(connection, 'release', name);
  }

  releaseConnection(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    this.reader?.close();
    this.writer?.close();
    this.reader = null;
    this.writer = null;
    this.cached = null;
    return Promise.resolve();
  }
}

/** Kysely's SQLite dialect with a driver that never blocks the event loop on a locked database. */
export class BusyTolerantSqliteDialect implements Dialect {
  constructor(private readonly options: SqliteDialectOptions) {}

  createDriver(): Driver {
    return new BusyTolerantSqliteDriver(this.options);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): SqliteAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): SqliteIntrospector {
    return new SqliteIntrospector(db);
  }
}
