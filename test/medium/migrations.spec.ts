import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, Migrator, sql } from 'kysely';
import { migrateToLatest, openDatabase } from '../../apps/server/src/database/database.factory';
import { Database } from '../../apps/server/src/database/database.types';
import { MIGRATIONS } from '../../apps/server/src/database/migrations';
import { freshPostgresDatabase } from '../support/postgres';
import { DATABASE_KINDS } from '../support/test-server';

it('lists the migrations in the order they apply, numbered without gaps', () => {
  const names = Object.keys(MIGRATIONS);
  expect(names).toEqual([...names].sort());
  expect(names.map((n) => Number(n.slice(0, 4)))).toEqual(names.map((_, i) => i + 1));
});

describe.each(DATABASE_KINDS)('database migrations on %s', (kind) => {
  let db: Kysely<Database>;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    if (kind === 'postgres') {
      const postgres = await freshPostgresDatabase();
      db = openDatabase({ kind: 'postgres', url: postgres.url });
      cleanup = async () => {
        await db.destroy();
        await postgres.drop();
      };
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'ferry-migrations-'));
      db = openDatabase({ kind: 'sqlite', file: join(dir, 'ferry.sqlite'), busyTimeoutMs: 5000 });
      cleanup = async () => {
        await db.destroy();
        rmSync(dir, { recursive: true, force: true });
      };
    }
  });
  afterEach(() => cleanup());

  it('upgrade a database that holds release_layers rows: the table goes, its release stays', async () => {
    const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(MIGRATIONS) } });
    expect((await migrator.migrateTo('0004-rollouts')).error).toBeUndefined();
    const at = '2026-01-01T00:00:00.000Z';
    const digest = `sha256:${'a'.repeat(64)}`;
    await sql`insert into fleets (id, name, slug, arch, signing_public_key, signing_private_key, created_at)
      values ('f', 'f', 'f', 'amd64', 'pk', 'sk', ${at})`.execute(db);
    await sql`insert into layers (diff_id, size, gzip_digest, gzip_size, created_at)
      values (${digest}, 10, ${digest}, 5, ${at})`.execute(db);
    await sql`insert into releases (id, fleet_id, version, note, total_size, manifest, signature, created_at)
      values ('r', 'f', 1, null, 10, '{}', 'sig', ${at})`.execute(db);
    const manifest = JSON.stringify({
      services: [
        { configDigest: `sha256:${'c'.repeat(64)}`, layers: [{ diffId: digest, gzipDigest: digest }] },
      ],
    });
    await sql`insert into releases (id, fleet_id, version, note, total_size, manifest, signature, created_at)
      values ('r2', 'f', 2, null, 10, ${manifest}, 'sig', ${at})`.execute(db);
    await sql`insert into release_layers (release_id, service, position, diff_id)
      values ('r', 'app', 0, ${digest})`.execute(db);
    expect(await migrateToLatest(db)).toEqual(Object.keys(MIGRATIONS).slice(4));
    const tables = (await db.introspection.getTables()).map((t) => t.name);
    expect(tables).not.toContain('release_layers');
    expect(tables).toEqual(expect.arrayContaining(['releases', 'layers', 'rollouts']));
    expect(await db.selectFrom('releases').select('id').orderBy('id').execute()).toEqual([
      { id: 'r' },
      { id: 'r2' },
    ]);
    // 0006 lists the blobs each existing release names, for the device download check.
    expect(
      await db
        .selectFrom('release_blobs')
        .select(['release_id', 'fleet_id', 'digest'])
        .orderBy('digest')
        .execute(),
    ).toEqual([
      { release_id: 'r2', fleet_id: 'f', digest },
      { release_id: 'r2', fleet_id: 'f', digest: `sha256:${'c'.repeat(64)}` },
    ]);
  });
});
