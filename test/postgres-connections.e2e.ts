import { Client } from 'pg';
import { Fleet } from '@ferry/protocol';
import { POSTGRES_ADMIN_URL } from './support/postgres';
import { json } from './support/simulator-harness';
import { TestServer, startTestServer } from './support/test-server';

/**
 * PostgreSQL ends the server's connections (a restart, a failover, an administrator, a database
 * dropped WITH (FORCE)): idle ones error in the pool, which must not end the process.
 */
describe('PostgreSQL ending the server’s connections', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('postgres');
  });
  afterAll(() => server.close());

  it('keeps the server up: the connections are replaced and the next requests are served', async () => {
    const create = (name: string) =>
      server.api('/v1/fleets', { method: 'POST', json: { name, arch: 'amd64' } });
    await json<Fleet>(await create('before'), 201);
    // Several queries at once, so the pool holds more than one idle connection.
    await Promise.all(Array.from({ length: 4 }, () => server.api('/v1/fleets')));

    const database = new URL(
      server.config.database.kind === 'postgres' ? server.config.database.url : '',
    ).pathname.slice(1);
    const admin = new Client({ connectionString: POSTGRES_ADMIN_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ ended: boolean }>(
        'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = $1',
        [database],
      );
      expect(rows.filter((r) => r.ended).length).toBeGreaterThan(0);
      // Each ended connection's error reaches its idle client in the pool.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { rows: left } = await admin.query<{ n: string }>(
        'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1',
        [database],
      );
      expect(Number(left[0]!.n)).toBe(0);
    } finally {
      await admin.end();
    }

    await json<Fleet>(await create('after'), 201);
    const fleets = await json<Fleet[]>(await server.api('/v1/fleets'), 200);
    expect(fleets.map((f) => f.name).sort()).toEqual(['after', 'before']);
  });
});
