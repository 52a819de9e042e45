import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, sql } from 'kysely';
import { DatabaseBusyError } from '@ferry/protocol';
import { BusyTolerantSqliteDialect } from './sqlite-dialect';

interface Schema {
  items: { id: number; name: string };
}

describe('BusyTolerantSqliteDialect', () => {
  let dir: string;
  let file: string;
  let db: Kysely<Schema>;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-sqlite-'));
    file = join(dir, 'test.sqlite');
    db = new Kysely<Schema>({ dialect: new BusyTolerantSqliteDialect({ file, busyTimeoutMs: 500 }) });
    await sql`create table items (id integer primary key, name text not null)`.execute(db);
  });
  afterEach(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts the file in WAL mode', async () => {
    const { rows } = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db);
    expect(rows[0]?.journal_mode).toBe('wal');
  });

  it('reuses prepared statements, and they follow schema changes and interleaved streams', async () => {
    await db.insertInto('items').values({ id: 1, name: 'one' }).execute();
    const all = (): Promise<unknown[]> =>
      sql`select * from items order by id`.execute(db).then((r) => r.rows);
    expect(await all()).toEqual([{ id: 1, name: 'one' }]);
    // The same SQL again is not prepared again.
    const prepare = jest.spyOn(SqliteDatabase.prototype, 'prepare');
    try {
      await all();
      await all();
      expect(prepare).not.toHaveBeenCalled();
    } finally {
      prepare.mockRestore();
    }
    // The same SQL after the table changed: the cached statement sees the new column.
    await sql`alter table items add column colour text`.execute(db);
    await db.insertInto('items').values({ id: 2, name: 'two' }).execute();
    expect(await all()).toEqual([
      { id: 1, name: 'one', colour: null },
      { id: 2, name: 'two', colour: null },
    ]);
    // A stream holds its statement while it iterates; the same SQL may run meanwhile.
    const seen: unknown[] = [];
    for await (const row of db.selectFrom('items').selectAll().orderBy('id').stream()) {
      seen.push(row);
      expect(await db.selectFrom('items').selectAll().orderBy('id').execute()).toHaveLength(2);
    }
    expect(seen).toHaveLength(2);
    // More distinct statements than the cache holds: every one still answers.
    for (let i = 0; i < 300; i += 1)
      expect((await sql<{ n: number }>`select ${sql.lit(i)} as n`.execute(db)).rows).toEqual([{ n: i }]);
  });

  it('keeps the order writes were issued in', async () => {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        db
          .insertInto('items')
          .values({ id: 1, name: `v${i}` })
          .onConflict((c) => c.column('id').doUpdateSet({ name: `v${i}` }))
          .execute(),
      ),
    );
    expect((await db.selectFrom('items').select('name').executeTakeFirst())?.name).toBe('v49');
  });

  it('does not let a read outside a transaction see its uncommitted rows, nor a rolled-back one', async () => {
    let seenInside: number | undefined;
    let seenOutside: number | undefined;
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ id: 7, name: 'draft' }).execute();
        seenInside = (await trx.selectFrom('items').selectAll().execute()).length;
        seenOutside = (await db.selectFrom('items').selectAll().execute()).length;
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(seenInside).toBe(1);
    expect(seenOutside).toBe(0);
    expect(await db.selectFrom('items').selectAll().execute()).toEqual([]);
  });

  it('serves reads while another process holds the write lock, and fails a write that waited too long with DatabaseBusyError', async () => {
    await db.insertInto('items').values({ id: 1, name: 'one' }).execute();
    const other = new SqliteDatabase(file);
    other.exec('BEGIN EXCLUSIVE');
    try {
      expect(await db.selectFrom('items').select('name').execute()).toEqual([{ name: 'one' }]);
      const started = Date.now();
      await expect(db.insertInto('items').values({ id: 2, name: 'two' }).execute()).rejects.toBeInstanceOf(
        DatabaseBusyError,
      );
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      await expect(
        db.transaction().execute((trx) => trx.deleteFrom('items').execute()),
      ).rejects.toBeInstanceOf(DatabaseBusyError);
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    await db.insertInto('items').values({ id: 2, name: 'two' }).execute();
    expect(await db.selectFrom('items').select('id').orderBy('id').execute()).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('completes a write that waited for a lock released in time', async () => {
    const other = new SqliteDatabase(file);
    other.exec('BEGIN EXCLUSIVE');
    const write = db.insertInto('items').values({ id: 3, name: 'three' }).execute();
    setTimeout(() => {
      other.exec('COMMIT');
      other.close();
    }, 200);
    await write;
    expect(await db.selectFrom('items').select('name').execute()).toEqual([{ name: 'three' }]);
  });
});
