import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { IncomingHttpHeaders, Server, createServer, request } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyDelta } from '@ferry/delta';
import { DeltaRecord, Release } from '@ferry/protocol';
import { Downloader } from '../devices/agent/src/downloader';
import { DownloadLedger } from '../devices/agent/src/ledger';
import { createLogger } from '../devices/agent/src/log';
import { ServerApi } from '../devices/agent/src/server-api';
import { noise } from './support/agent-images';
import { until } from './support/agent-process';
import { dockerArchive, gnuTarLayer, sha256 } from './support/hostile-archives';
import { TEST_REDIS_URL, deleteQueueKeys, testQueuePrefix } from './support/redis-keys';
import { S3Gateway, startS3Gateway } from './support/s3-gateway';
import { TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';
import { WorkerProcess, startWorker } from './support/worker-process';

/**
 * A CDN in front of the object store, as docs/blob-store.md describes it: it forwards path and query
 * (the presigned signature) to the origin with the origin's Host. It records what devices sent, and
 * can cut a response after `cutAfter` bytes once, or refuse every connection.
 */
interface Cdn {
  url: string;
  requests: { path: string; headers: IncomingHttpHeaders; status: number }[];
  cutAfter: number | null;
  refuse: boolean;
  close(): Promise<void>;
}

async function startCdn(origin: string): Promise<Cdn> {
  const target = new URL(origin);
  const cdn: Cdn = { url: '', requests: [], cutAfter: null, refuse: false, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    if (cdn.refuse) {
      req.socket.destroy();
      return;
    }
    const headers = { ...req.headers, host: target.host };
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (up) => {
        cdn.requests.push({ path: req.url ?? '', headers: req.headers, status: up.statusCode ?? 0 });
        res.writeHead(up.statusCode ?? 502, up.headers);
        const cut = cdn.cutAfter;
        cdn.cutAfter = null;
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          if (cut !== null && sent + chunk.length > cut) {
            res.write(chunk.subarray(0, cut - sent));
            res.socket?.destroy();
            up.destroy();
            return;
          }
          sent += chunk.length;
          res.write(chunk);
        });
        up.on('end', () => res.end());
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.on('data', (chunk: Buffer) => upstream.write(chunk));
    req.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cdn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cdn.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return cdn;
}

/**
 * Device downloads and delta builds with the blobs in a real S3 server (Ceph RGW) behind a CDN: the
 * server redirects devices to presigned URLs, the agent's own downloader resumes by Range through the
 * CDN, verifies digests and falls back to the server when the store cannot be reached; the worker has
 * a data folder of its own (no shared disk) and reads bases from, writes deltas to, the store.
 */
describe.each(DATABASE_KINDS)('blobs in an S3 object store (%s)', (kind) => {
  let s3: S3Gateway;
  let cdn: Cdn;
  let server: TestServer;
  let worker: WorkerProcess;
  let work: string;
  let bucket: string;
  let device: { uuid: string; apiKey: string };
  let v1: Release;
  let v2: Release;
  // Tagged with this run, so the global teardown would see any key left behind.
  const prefix = testQueuePrefix('s3');
  const binary = noise(11, 700_000);

  const release = async (files: Record<string, Buffer>, version: number): Promise<Release> => {
    const layer = gnuTarLayer(
      join(work, `v${version}`),
      Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.toString('latin1')])),
    );
    const base = gnuTarLayer(join(work, 'base'), { 'etc/os-release': 'ferry test os\n' });
    const archive = await dockerArchive([base, layer], { repoTag: 'app:latest' });
    const response = await server.api(`/v1/fleets/s3/releases?version=${version}`, {
      method: 'POST',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as Release;
  };
  const downloader = async (name: string) => {
    const dir = join(work, name);
    const api = new ServerApi(server.url, device.apiKey);
    return {
      dir,
      api,
      downloader: new Downloader(api, dir, await DownloadLedger.open(dir), createLogger('error')),
    };
  };
  const options = { attempts: 4, retryBaseMs: 50, onBytes: () => undefined };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-s3-'));
    s3 = await startS3Gateway();
    bucket = await s3.newBucket();
    cdn = await startCdn(s3.endpoint);
    server = await startTestServer(kind, {
      ...s3.env(bucket, 'ferry'),
      BLOB_PUBLIC_URL: cdn.url,
      BLOB_PRESIGN_SECONDS: '60',
      FERRY_QUEUE_PREFIX: prefix,
    });
    // Its own data folder: nothing shared with the server but Redis and the object store.
    worker = await startWorker({
      ...s3.env(bucket, 'ferry'),
      DATA_DIR: join(work, 'worker-data'),
      BLOB_CACHE_MB: '16',
      FERRY_QUEUE_PREFIX: prefix,
      WORKER_LOCK_MS: '5000',
      LOG_LEVEL: 'warn',
    });
    await server.api('/v1/fleets', { method: 'POST', json: { name: 'S3', arch: 'amd64' } });
    const key = await server.api('/v1/fleets/s3/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    device = (await (
      await server.api('/v1/device/register', { method: 'POST', json: { provisioningKey }, token: null })
    ).json()) as typeof device;
    v1 = await release({ 'app/bin': binary, 'app/VERSION': Buffer.from('1\n') }, 1);
  }, 300_000);
  afterAll(async () => {
    await worker?.kill();
    await server?.close();
    await cdn?.close();
    await s3?.stop();
    await deleteQueueKeys(TEST_REDIS_URL, prefix);
    rmSync(work, { recursive: true, force: true });
  }, 180_000);

  const appLayer = (release: Release) => release.services[0]!.layers[1]!;

  it("keeps no blob on the server's disk, and answers a redirecting client 307 to a presigned URL on the CDN", async () => {
    expect(existsSync(join(server.dataDir, 'blobs'))).toBe(false);
    const layer = appLayer(v1);
    const redirected = await fetch(`${server.url}/v1/blobs/${layer.gzipDigest}`, {
      headers: { authorization: `Bearer ${device.apiKey}`, 'ferry-accept-redirect': '1' },
      redirect: 'manual',
    });
    expect(redirected.status).toBe(307);
    const location = redirected.headers.get('location') ?? '';
    expect(location.startsWith(`${cdn.url}/${bucket}/ferry/blobs/sha256/${layer.gzipDigest.slice(7)}?`)).toBe(
      true,
    );
    expect(location).toContain('X-Amz-Signature=');
    expect(location).toContain('X-Amz-Expires=60');
    // A client that does not ask for redirects (an older agent) is proxied, bytes as stored.
    const proxied = await fetch(`${server.url}/v1/blobs/${layer.gzipDigest}`, {
      headers: { authorization: `Bearer ${device.apiKey}` },
    });
    expect(proxied.status).toBe(200);
    expect(sha256(Buffer.from(await proxied.arrayBuffer()))).toBe(layer.gzipDigest);
    const ranged = await fetch(`${server.url}/v1/blobs/${layer.diffId}`, {
      headers: { authorization: `Bearer ${device.apiKey}`, range: 'bytes=100-199' },
    });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(100);
    // The access check comes first: a blob of no release of the device's fleet is not found, redirect or not.
    const foreign = await fetch(`${server.url}/v1/blobs/sha256:${'e'.repeat(64)}`, {
      headers: { authorization: `Bearer ${device.apiKey}`, 'ferry-accept-redirect': '1' },
      redirect: 'manual',
    });
    expect(foreign.status).toBe(404);
    expect((await fetch(`${server.url}/v1/blobs/${layer.gzipDigest}`, { redirect: 'manual' })).status).toBe(
      401,
    );
  });

  it("the agent's downloader follows the redirect without its key, resumes a cut download by Range and verifies the digest", async () => {
    const layer = appLayer(v1);
    const { downloader: d } = await downloader('agent-a');
    cdn.requests.length = 0;
    cdn.cutAfter = 200_000;
    const path = await d.fetch(layer.gzipDigest, layer.gzipSize, options);
    expect(sha256(readFileSync(path))).toBe(layer.gzipDigest);
    const got = cdn.requests.filter((r) => r.path.includes(layer.gzipDigest.slice(7)));
    expect(got.length).toBe(2);
    expect(got[0]?.headers.range).toBeUndefined();
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(got[1]?.headers.range ?? '')?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(200_000);
    expect(got[1]?.status).toBe(206);
    expect(got.every((r) => r.headers.authorization === undefined)).toBe(true);
  });

  it('falls back to the server when the store cannot be reached, and the bytes are the same', async () => {
    const layer = appLayer(v1);
    const { downloader: d } = await downloader('agent-b');
    cdn.refuse = true;
    try {
      const path = await d.fetch(layer.diffId, layer.size, options);
      expect(sha256(readFileSync(path))).toBe(layer.diffId);
    } finally {
      cdn.refuse = false;
    }
  });

  it("a worker without the server's disk builds a delta from the store into the store, within its cache cap", async () => {
    const changed = Buffer.from(binary);
    changed.write('patched', 5000);
    v2 = await release({ 'app/bin': changed, 'app/VERSION': Buffer.from('2\n') }, 2);
    const response = await server.api(`/v1/releases/${v2.id}/deltas`, {
      method: 'POST',
      json: { from: v1.id },
    });
    expect(response.status).toBe(201);
    const [delta] = await until(
      'the delta',
      async () => {
        const list = (await (await server.api(`/v1/releases/${v2.id}/deltas`)).json()) as DeltaRecord[];
        return list.length > 0 && list.every((d) => d.state !== 'queued' && d.state !== 'building')
          ? list
          : undefined;
      },
      120_000,
      250,
    );
    expect(delta?.state).toBe('ready');
    const { downloader: d } = await downloader('agent-c');
    const deltaPath = await d.fetch(delta!.digest!, delta!.size!, options);
    const v1Layers = v1.services[0]!.layers;
    const bases: string[] = [];
    for (const digest of delta!.bases) {
      const layer = v1Layers.find((l) => l.diffId === digest)!;
      bases.push(await d.fetch(digest, layer.size, options));
    }
    const out = join(work, 'rebuilt.tar');
    await applyDelta({ bases, delta: deltaPath, out });
    expect(sha256(readFileSync(out))).toBe(appLayer(v2).diffId);
    // The worker cached the layers it read, in its own folder, under its cap; its staging is empty.
    const cache = join(work, 'worker-data', 'cache', 'layers');
    const cached = readdirSync(cache).map((name) => statSync(join(cache, name)).size);
    expect(cached.length).toBeGreaterThan(0);
    expect(cached.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(existsSync(join(server.dataDir, 'blobs'))).toBe(false);
  });
});
