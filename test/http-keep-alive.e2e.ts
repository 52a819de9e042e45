import { Agent, request } from 'node:http';
import { KEEP_ALIVE_MS } from '../apps/server/src/server.factory';
import { TestServer, startTestServer } from './support/test-server';

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
    const agent = new Agent({ keepAlive: true, maxSockets: 1, timeout: 120_000 });
    try {
      expect(await get(agent, `${server.url}/healthz`)).toEqual({ status: 200, reused: false });
      await new Promise((r) => setTimeout(r, 6_000));
      // Node's default of 5 s would have closed it by now; the same connection carries the next request.
      expect(await get(agent, `${server.url}/healthz`)).toEqual({ status: 200, reused: true });
    } finally {
      agent.destroy();
    }
  }, 30_000);
});
