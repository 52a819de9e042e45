import { AddressInfo, Server, Socket, createConnection, createServer } from 'node:net';

/**
 * A TCP load balancer on 127.0.0.1 in front of several ports, as HAProxy in `mode tcp` with
 * `balance roundrobin` runs in front of server replicas: each new connection goes to the next backend
 * in turn; a backend that refuses (its process is dead) is skipped for the next one, and when none
 * answers the client is closed. A backend that dies cuts its connections, whose clients reconnect
 * and land on the live ones. It counts connections per backend so a test can see the spread.
 */
export interface TcpBalancer {
  port: number;
  /** Connections each backend (by its index in `backends`) accepted so far. */
  accepted: number[];
  /** Connections open now per backend. */
  open: () => number[];
  close: () => Promise<void>;
}

export async function startTcpBalancer(backends: number[]): Promise<TcpBalancer> {
  const accepted = backends.map(() => 0);
  const sockets = backends.map(() => new Set<Socket>());
  let next = 0;

  /** Connects to the first backend that answers, starting with the next one in turn. */
  const connectUpstream = (
    tries: number,
    onReady: (found: { upstream: Socket; index: number } | null) => void,
  ): void => {
    if (tries >= backends.length) {
      onReady(null);
      return;
    }
    const index = next;
    next = (next + 1) % backends.length;
    const upstream = createConnection({ host: '127.0.0.1', port: backends[index]! });
    upstream.once('connect', () => {
      upstream.removeAllListeners('error');
      onReady({ upstream, index });
    });
    upstream.once('error', () => {
      upstream.destroy();
      connectUpstream(tries + 1, onReady);
    });
  };

  const server: Server = createServer((client) => {
    client.pause();
    client.on('error', () => client.destroy());
    connectUpstream(0, (found) => {
      if (!found || client.destroyed) {
        found?.upstream.destroy();
        client.destroy();
        return;
      }
      const { upstream, index } = found;
      accepted[index] = (accepted[index] ?? 0) + 1;
      sockets[index]!.add(client);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        sockets[index]!.delete(client);
      };
      client.on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    open: () => sockets.map((set) => set.size),
    close: async () => {
      for (const set of sockets) for (const socket of set) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
