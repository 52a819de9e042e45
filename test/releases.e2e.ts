import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { ManifestSignatureError, Release, verifyManifest } from '@ferry/protocol';
import { dockerArchive, gnuTarLayer, gzipBombLayer, sha256, tarOf } from './support/hostile-archives';
import { pushArchive } from './support/files';
import { ImageFixtures, buildImageFixtures } from './support/image-fixtures';
import { ADMIN_TOKEN, DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(path);
    }
  };
  try {
    walk(dir);
  } catch {
    return [];
  }
  return out.sort();
}

describe.each(DATABASE_KINDS)('releases on %s', (kind) => {
  let server: TestServer;
  let fixtures: ImageFixtures;
  let work: string;
  let fleet: { slug: string; signingPublicKey: string };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-releases-'));
    fixtures = buildImageFixtures(join(work, 'fixtures'));
    server = await startTestServer(kind, { FERRY_MAX_RELEASE_BYTES: String(20 * 1024 * 1024) });
    const response = await server.api('/v1/fleets', {
      method: 'POST',
      json: { name: 'Releases', arch: 'amd64' },
    });
    fleet = (await response.json()) as typeof fleet;
  });
  afterAll(async () => {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  // Buffers on a connection of their own: building a hostile archive blocks this event loop for
  // seconds, and a pooled keep-alive connection the server closed meanwhile would be reset.
  const push = (body: Buffer | Readable, query = ''): Promise<Response> =>
    body instanceof Readable
      ? server.api(`/v1/fleets/${fleet.slug}/releases${query}`, {
          method: 'POST',
          body: Readable.toWeb(body) as ReadableStream,
          headers: { 'content-type': 'application/x-tar' },
        })
      : pushArchive(server.url, fleet.slug, ADMIN_TOKEN, body, query);

  let v1: Release & { newLayers: string[] };

  it('stores a skopeo docker-archive as release 1, streamed, with layers by diffID and gzip copies', async () => {
    const response = await push(createReadStream(fixtures.v1Docker));
    expect(response.status).toBe(201);
    v1 = (await response.json()) as typeof v1;
    expect(v1.version).toBe(1);
    expect(v1.services.map((s) => s.name)).toEqual(['app']);
    const layers = v1.services[0]?.layers ?? [];
    expect(layers).toHaveLength(2);
    expect(v1.newLayers).toEqual(layers.map((l) => l.diffId));
    for (const layer of layers) {
      const plain = await server.api(`/v1/blobs/${layer.diffId}`);
      const bytes = Buffer.from(await plain.arrayBuffer());
      expect(sha256(bytes)).toBe(layer.diffId);
      expect(bytes.length).toBe(layer.size);
      const gz = Buffer.from(await (await server.api(`/v1/blobs/${layer.gzipDigest}`)).arrayBuffer());
      expect(sha256(gz)).toBe(layer.gzipDigest);
      expect(sha256(gunzipSync(gz))).toBe(layer.diffId);
    }
    const config = Buffer.from(
      await (await server.api(`/v1/blobs/${v1.services[0]?.configDigest}`)).arrayBuffer(),
    );
    expect(sha256(config)).toBe(v1.services[0]?.configDigest);
  });

  it('signs the manifest with the fleet key', () => {
    expect(() => verifyManifest(v1.manifest, v1.signature, fleet.signingPublicKey)).not.toThrow();
    const forged = { ...v1.manifest, version: 99 };
    expect(() => verifyManifest(forged, v1.signature, fleet.signingPublicKey)).toThrow(
      ManifestSignatureError,
    );
  });

  it('stores an OCI archive of the next version and reports only the changed layer as new', async () => {
    const response = await push(readFileSync(fixtures.v2Oci), '?note=second');
    expect(response.status).toBe(201);
    const v2 = (await response.json()) as Release & { newLayers: string[] };
    expect(v2.version).toBe(2);
    expect(v2.note).toBe('second');
    expect(v2.services[0]?.layers[0]?.diffId).toBe(v1.services[0]?.layers[0]?.diffId);
    expect(v2.newLayers).toEqual([v2.services[0]?.layers[1]?.diffId]);
  });

  it('names services from the tags of a multi-image archive, at a chosen version; 409 when it is taken', async () => {
    const response = await push(readFileSync(fixtures.multiOci), '?version=10');
    expect(response.status).toBe(201);
    const multi = (await response.json()) as Release;
    expect(multi.version).toBe(10);
    expect(multi.services.map((s) => s.name)).toEqual(['web', 'worker']);
    expect((await push(readFileSync(fixtures.multiOci), '?version=10')).status).toBe(409);
    const list = (await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).json()) as Release[];
    expect(list.map((r) => r.version)).toEqual([10, 2, 1]);
    const one = (await (await server.api(`/v1/releases/${multi.id}`)).json()) as Release;
    expect(one.services).toEqual(multi.services);
  });

  it('serves blob ranges: 206 with Content-Range, 416 past the end, ETag the digest', async () => {
    const layer = v1.services[0]?.layers[0];
    if (!layer) throw new Error('no layer');
    const whole = Buffer.from(await (await server.api(`/v1/blobs/${layer.diffId}`)).arrayBuffer());
    const part = await server.api(`/v1/blobs/${layer.diffId}`, { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${layer.size}`);
    expect(part.headers.get('etag')).toBe(`"${layer.diffId}"`);
    expect(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(1000, 2000))).toBe(true);
    const tail = await server.api(`/v1/blobs/${layer.diffId}`, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(whole.subarray(-10))).toBe(true);
    const past = await server.api(`/v1/blobs/${layer.diffId}`, {
      headers: { range: `bytes=${layer.size}-` },
    });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${layer.size}`);
    const stale = await server.api(`/v1/blobs/${layer.diffId}`, {
      headers: { range: 'bytes=0-9', 'if-range': '"sha256:other"' },
    });
    expect(stale.status).toBe(200);
    expect((await server.api(`/v1/blobs/sha256:${'0'.repeat(64)}`)).status).toBe(404);
    expect((await server.api('/v1/blobs/notadigest')).status).toBe(400);
    expect((await server.api(`/v1/blobs/${layer.diffId}`, { token: null })).status).toBe(401);
  });

  describe('hostile archives leave the blob folder and the database unchanged', () => {
    const hostile: [string, () => Promise<Buffer>, number, RegExp][] = [
      [
        'traversal member name',
        () => tarOf([{ name: '../../etc/cron.d/x', body: 'x' }]),
        422,
        /unsafe member name/,
      ],
      ['absolute member name', () => tarOf([{ name: '/etc/passwd', body: 'x' }]), 422, /unsafe member name/],
      [
        'link escaping the archive',
        () => tarOf([{ name: 'l', type: 'symlink', linkname: '../../../etc' }]),
        422,
        /escapes/,
      ],
      [
        'layer digest mismatch',
        async () =>
          dockerArchive([gnuTarLayer(join(work, 'mm'), { a: 'a' })], { diffIds: [sha256('other')] }),
        422,
        /diff_id/,
      ],
      [
        'truncated archive',
        async () => readFileSync(fixtures.v1Docker).subarray(0, 700_000),
        422,
        /tar|missing/,
      ],
      ['missing manifest', () => tarOf([{ name: 'readme', body: 'hello' }]), 422, /missing manifest/],
      [
        'gzip bomb',
        async () => {
          const bomb = await gzipBombLayer(64 * 1024 * 1024);
          return dockerArchive([bomb.gz], { diffIds: [bomb.diffId] });
        },
        422,
        /gzip bomb|size limit/,
      ],
      [
        'config that lies about its digest',
        async () =>
          dockerArchive([gnuTarLayer(join(work, 'cfg'), { b: 'b' })], {
            configName: `${'a'.repeat(64)}.json`,
          }),
        422,
        /does not match its digest/,
      ],
      ['oversized body', async () => Buffer.alloc(21 * 1024 * 1024), 413, /FERRY_MAX_RELEASE_BYTES/],
      [
        'not a tar at all',
        async () => Buffer.from('hello, this is not an archive'.repeat(40)),
        422,
        /tar|manifest/,
      ],
    ];

    it.each(hostile)('%s is refused with its status and reason', async (_name, make, status, reason) => {
      const blobsBefore = filesUnder(join(server.dataDir, 'blobs'));
      const releasesBefore = await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).text();
      const response = await push(await make());
      expect(response.status).toBe(status);
      expect(((await response.json()) as { message: string }).message).toMatch(reason);
      expect(filesUnder(join(server.dataDir, 'blobs'))).toEqual(blobsBefore);
      expect(await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).text()).toBe(releasesBefore);
      expect(filesUnder(join(server.dataDir, 'tmp'))).toEqual([]);
    });

    it('a body declared larger than the limit is refused with 413 before it is sent', async () => {
      const { request } = await import('node:http');
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${server.url}/v1/fleets/${fleet.slug}/releases`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            'content-type': 'application/x-tar',
            'content-length': String(500 * 1024 * 1024),
          },
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body });
            req.destroy();
          });
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      expect(answer.status).toBe(413);
      expect(answer.body).toMatch(/exceeds the \d+-byte limit/);
    });
  });

  it('refuses a push to an unknown fleet with 404 and a JSON body with 400', async () => {
    const unknown = await server.api('/v1/fleets/nope/releases', {
      method: 'POST',
      body: readFileSync(fixtures.v1Docker),
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(unknown.status).toBe(404);
    const json = await server.api(`/v1/fleets/${fleet.slug}/releases`, {
      method: 'POST',
      json: { archive: 'x' },
    });
    expect(json.status).toBe(400);
  });

  it('keeps every stored blob named by its own digest', () => {
    for (const file of filesUnder(join(server.dataDir, 'blobs'))) {
      const hex = createHash('sha256').update(readFileSync(file)).digest('hex');
      expect(file.endsWith(hex)).toBe(true);
      expect(statSync(file).size).toBeGreaterThan(0);
    }
  });
});
