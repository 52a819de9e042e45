import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy does to one blob response. */
export type BlobFault = 'corrupt' | 'truncate' | 'truncate-once';

/**
 * A loopback HTTP proxy between agent and server, for faults a real link has: it counts the bytes of
 * every blob it serves, can throttle them, corrupt or truncate chosen blobs, and rewrite target
 * answers. Listens on 127.0.0.1 only.
 */
export interface AgentProxy {
  url: string;
  /** Bytes of blob bodies sent to the agent, by digest. */
  served: Map<string, number>;
  /** Range headers of blob requests, in order. */
  requests: { digest: string; range: string | null }[];
  faults: Map<string, BlobFault>;
  /** Bytes per second for blob bodies (0: unthrottled). */
  throttle: number;
  /** Rewrites `GET|POST /v1/device/target` answers (or replaces them: a replayed target). */
  rewriteTarget:
    ((target: Record<string, unknown>) => Record<string, unknown> | Promise<Record<string, unknown>>) | null;
  /** Rewrites `GET /v1/device/variables` answers (a middlebox changing a device's variables). */
  rewriteVariables: ((variables: Record<string, unknown>) => Record<string, unknown>) | null;
  close: () => Promise<void>;
}

export async function startAgentProxy(upstream: string): Promise<AgentProxy> {
  const target = new URL(upstream);
  const proxy: AgentProxy = {
    url: '',
    served: new Map(),
    requests: [],
    faults: new Map(),
    throttle: 0,
    rewriteTarget: null,
    rewriteVariables: null,
    close: async () => undefined,
  };
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const blob = /^\/v1\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '');
    const isTarget = (req.url ?? '').startsWith('/v1/device/target');
    const isVariables = (req.url ?? '').startsWith('/v1/device/variables');
    if (blob) proxy.requests.push({ digest: blob[1]!, range: req.headers.range ?? null });
    const upstreamReq = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        const rewrite = isTarget ? proxy.rewriteTarget : isVariables ? proxy.rewriteVariables : null;
        if (rewrite && up.statusCode === 200) {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            void (async () => {
              const body = Buffer.from(
                JSON.stringify(
                  await rewrite(
                    JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
                  ),
                ),
              );
              const headers = { ...up.headers, 'content-length': String(body.length) };
              delete headers['transfer-encoding'];
              delete headers.etag;
              res.writeHead(200, headers);
              res.end(body);
            })().catch(() => res.destroy());
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!blob || req.method !== 'GET') {
          up.pipe(res);
          return;
        }
        const digest = blob[1]!;
        const fault = proxy.faults.get(digest);
        if (fault === 'truncate-once') proxy.faults.delete(digest);
        const length = Number(up.headers['content-length'] ?? 0);
        let sent = 0;
        void (async () => {
          for await (const received of up) {
            // Throttled links deliver in small pieces, so a kill can land mid-blob.
            const pieces: Buffer[] = [];
            const whole = received as Buffer;
            const step = proxy.throttle > 0 ? 1024 : whole.length || 1;
            for (let i = 0; i < whole.length; i += step) pieces.push(whole.subarray(i, i + step));
            for (let buf of pieces) {
              if ((fault === 'truncate' || fault === 'truncate-once') && sent + buf.length > length / 2) {
                buf = buf.subarray(0, Math.max(0, Math.floor(length / 2) - sent));
                proxy.served.set(digest, (proxy.served.get(digest) ?? 0) + buf.length);
                // Let the half reach the agent before the link drops.
                res.write(buf, () => setTimeout(() => res.destroy(), 100));
                return;
              }
              if (fault === 'corrupt') {
                buf = Buffer.from(buf);
                for (let i = 0; i < buf.length; i += 97) buf[i] = buf[i]! ^ 0x5a;
              }
              if (proxy.throttle > 0)
                await new Promise((r) => setTimeout(r, (buf.length / proxy.throttle) * 1000));
              if (res.destroyed) return;
              res.write(buf);
              sent += buf.length;
              proxy.served.set(digest, (proxy.served.get(digest) ?? 0) + buf.length);
            }
          }
          res.end();
        })().catch(() => res.destroy());
      },
    );
    upstreamReq.on('error', () => res.destroy());
    req.pipe(upstreamReq);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return proxy;
}
