import type { Server } from 'node:http';

/** How long an idle HTTP keep-alive connection stays open: longer than clients keep theirs. */
export const KEEP_ALIVE_MS = 65_000;
/** While the server closes, how often connections that have become idle are closed. */
const CLOSING_SWEEP_MS = 100;

/**
 * Keep-alive that neither races clients nor holds up a shutdown:
 * - idle connections outlive every client's own idle timeout (Node's agents 5 s, browsers and load
 *   balancers up to 60 s), so the client closes them first and never sends a request on a socket the
 *   server is closing at that instant ("socket hang up", seen with 32 concurrent downloads);
 * - once the server closes, a connection is closed as soon as its last response is done (Node's
 *   `close()` only closes the connections idle at that moment, and the others would otherwise wait out
 *   the keep-alive time: a restart took over a minute).
 */
export function keepConnectionsAlive(server: Server): void {
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 1000;
  const close = server.close.bind(server);
  server.close = (callback?: (error?: Error) => void) => {
    const sweep = setInterval(() => server.closeIdleConnections(), CLOSING_SWEEP_MS);
    sweep.unref();
    server.once('close', () => clearInterval(sweep));
    close(callback);
    return server;
  };
}
