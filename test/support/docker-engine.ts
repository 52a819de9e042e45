import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * A real Docker engine (Debian's docker.io, dockerd 20.10, API 1.41 as balenaEngine 20.10) of its
 * own: private data root, exec root, pidfile and unix socket; no iptables, no bridge, so containers
 * run with `NetworkMode: host` or `none` only. One per test file; `stop()` removes everything.
 */
export interface DockerEngine {
  dir: string;
  socket: string;
  /** A JSON call to the engine API; `raw` returns the body as text. */
  api: <T = unknown>(method: string, path: string, body?: unknown) => Promise<{ status: number; body: T }>;
  /** Loads a docker-archive file (as an operator's `docker load`). */
  load: (archive: string) => Promise<void>;
  /** Managed containers (label io.ferry.service) with their state, labels and image. */
  managed: () => Promise<
    { Id: string; State: string; Labels: Record<string, string>; ImageID: string; Names: string[] }[]
  >;
  images: () => Promise<{ Id: string; RepoTags: string[] | null }[]>;
  log: () => string;
  stop: () => Promise<void>;
}

function call<T>(
  socket: string,
  method: string,
  path: string,
  body?: Buffer,
  contentType = 'application/json',
): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method,
        path: `/v1.41${path}`,
        headers: body ? { 'content-type': contentType, 'content-length': body.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          if (res.headers['content-type']?.includes('json') && text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function startDockerEngine(): Promise<DockerEngine> {
  const dir = join('/tmp', `ferry-dockerd-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'docker.sock');
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'dockerd.pid'),
      '-H',
      `unix://${socket}`,
      '--iptables=false',
      '--bridge=none',
      '--storage-driver=overlay2',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dockerd exited:\n${output}`);
    if (existsSync(socket)) {
      const ok = await call(socket, 'GET', '/_ping').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
    }
    if (Date.now() > deadline) throw new Error(`dockerd did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const api: DockerEngine['api'] = (method, path, body) =>
    call(socket, method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
  return {
    dir,
    socket,
    api,
    load: async (archive) => {
      const res = await call<string>(
        socket,
        'POST',
        '/images/load?quiet=1',
        readFileSync(archive),
        'application/x-tar',
      );
      if (res.status !== 200 || String(res.body).includes('"error"'))
        throw new Error(`load failed: ${String(res.body)}`);
    },
    managed: async () => {
      const filters = encodeURIComponent(JSON.stringify({ label: ['io.ferry.service'] }));
      return (
        await api<
          { Id: string; State: string; Labels: Record<string, string>; ImageID: string; Names: string[] }[]
        >('GET', `/containers/json?all=1&filters=${filters}`)
      ).body;
    },
    images: async () => (await api<{ Id: string; RepoTags: string[] | null }[]>('GET', '/images/json')).body,
    log: () => output,
    stop: async () => {
      try {
        const all = (await api<{ Id: string }[]>('GET', '/containers/json?all=1')).body;
        for (const c of Array.isArray(all) ? all : []) await api('DELETE', `/containers/${c.Id}?force=1`);
      } catch {
        // the engine may already be gone
      }
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      // dockerd leaves overlay mounts behind when killed; unmount before removing.
      try {
        const mounts = readFileSync('/proc/self/mounts', 'utf8')
          .split('\n')
          .map((l) => l.split(' ')[1] ?? '')
          .filter((m) => m.startsWith(dir))
          .sort((a, b) => b.length - a.length);
        for (const m of mounts) spawn('umount', ['-l', m]);
        if (mounts.length > 0) await new Promise((r) => setTimeout(r, 300));
      } catch {
        // best effort
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
