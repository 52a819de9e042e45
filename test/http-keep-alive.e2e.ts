import { Agent, request } from 'node:http';
import { KEEP_ALIVE_MS } from '../apps/server/src/common/http-keep-alive';
import { newPlace, startServerAt } from './support/simulator-harness';
import { ADMIN_TOKEN, TestServer, startTestServer } from './support/test-server';

/** GET `path` through `agent`; resolves with the status and whether an idle pooled connection carried it. */
function get(agent: Agent, url: string): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Keep-alive connections: the server keeps an idle one open longer than clients keep theirs, so a client
 * never sends a request on a socket the server is closing at that instant (which a client sees as
 * "socket hang up"; it happened under 32 concurrent downloads, bench/blob-downloads.ts).
 */
describe('HTTP keep-alive', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('sqlite');
  }, 60_000);
  afterAll(() => server?.close());

  it('keeps an idle connection open past the 5 s Node clients keep theirs', async () => {
    expect(KEEP_ALIVE_MS).toBeGreaterThan(60_000);
    // A server as it sets itself up: startTestServer sets a keep-alive of its own over the server's.
    const own = await startServerAt(await newPlace());
    const agent = new Agent({ keepAlive: true, maxSockets: 1, timeout: 120_000 });
    try {
      expect(await get(agent, `${own.url}/healthz`)).toEqual({ status: 200, reused: false });
      await new Promise((r) => setTimeout(r, 6_000));
      // Node's default of 5 s would have closed it by now; the same connection carries the next request.
      expect(await get(agent, `${own.url}/healthz`)).toEqual({ status: 200, reused: true });
    } finally {
      agent.destroy();
      await own.close();
      await own.remove();
    }
  }, 30_000);

  it('closes promptly: a keep-alive connection whose request was in flight at close is closed after its answer', async () => {
    // Closed as the server closes itself (app.close(), as on SIGTERM), not by the test harness's shortcut.
    const own = await startServerAt(await newPlace());
    const agent = new Agent({ keepAlive: true, maxSockets: 1, timeout: 120_000 });
    try {
      expect((await get(agent, `${own.url}/healthz`)).status).toBe(200);
      // A request on the pooled connection whose body is still arriving when the server starts closing.
      const body = JSON.stringify({ name: 'Closing', arch: 'amd64' });
      let answered!: (status: number) => void;
      const status = new Promise<number>((resolve) => (answered = resolve));
      const req = request(
        `${own.url}/v1/fleets`,
        {
          agent,
          method: 'POST',
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => answered(res.statusCode ?? 0));
        },
      );
      req.on('error', () => answered(-1));
      req.write(body.slice(0, 5));
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      const closed = own.close();
      await new Promise((r) => setTimeout(r, 200));
      req.end(body.slice(5));
      // Answered (created, or refused because the server is shutting down), not cut off.
      expect(await status).toBeGreaterThanOrEqual(200);
      await closed;
      // Node's close() would leave that connection open for its keep-alive time (65 s here).
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      agent.destroy();
      await own.remove();
    }
  }, 30_000);
});
