import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { delay } from '../support/mqtt-devices';
import { ServerProcess, startServerProcess } from '../support/server-process';
import { ADMIN_TOKEN } from '../support/test-server';

describe('what a server process writes to its log', () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startServerProcess({ LOG_LEVEL: 'info' });
  });
  afterAll(async () => server?.stop());

  it('keeps a percent-encoded ?token=, 5xx URLs and request headers out of it', async () => {
    const probe = 'header-value-that-must-not-be-logged';
    // The admin token as `%74oken` (= token): the server accepts it, and the log must not show it.
    const events = new AbortController();
    const stream = await fetch(`${server.url}/v1/events?%74oken=${ADMIN_TOKEN}&fleet=nope`, {
      headers: { 'x-probe': probe },
      signal: events.signal,
    });
    expect(stream.status).toBe(404);
    events.abort();
    // A 5xx: the blob folder replaced by a file makes every blob lookup fail with ENOTDIR.
    const digest = `sha256:${'ab'.repeat(32)}`;
    const shard = join(server.dataDir, 'blobs', 'sha256');
    rmSync(shard, { recursive: true, force: true });
    mkdirSync(join(server.dataDir, 'blobs'), { recursive: true });
    writeFileSync(shard, 'not a folder');
    const broken = await fetch(`${server.url}/v1/blobs/${digest}?token=SECRET-5XX&other=1`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-probe': probe },
    });
    expect(broken.status).toBe(500);
    await delay(500);
    const log = server.output();
    expect(log).not.toContain(ADMIN_TOKEN);
    expect(log).not.toContain('SECRET-5XX');
    expect(log).not.toContain(probe);
    expect(log).not.toContain('"headers"');
    // Both requests were logged, with their redacted query.
    expect(log).toContain('/v1/events?token=[Redacted]&fleet=nope');
    expect(log).toContain(`unhandled error on GET /v1/blobs/${digest}?token=[Redacted]&other=1`);
  });
});
