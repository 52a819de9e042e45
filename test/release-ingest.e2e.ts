import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { gunzipSync, gzipSync } from 'node:zlib';
import { applyDelta, encodeDelta } from '@ferry/delta';
import { Release, ReleaseLayer, deviceTopic } from '@ferry/protocol';
import { noise } from './support/agent-images';
import { filesUnder, pushArchive } from './support/files';
import { dockerArchive, gnuTarLayer, sha256, tarOf } from './support/hostile-archives';
import { ImageFixtures, buildImageFixtures, gzipLayersOf, umociInsertImages } from './support/image-fixtures';
import { connectDevice, createFleet, registerDevice, TestFleet } from './support/mqtt-devices';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

/** Release pushes that fail part-way leave nothing behind and never take the server down. */
describe.each(DATABASE_KINDS)('release ingestion under broken and hostile archives (%s)', (kind) => {
  let server: TestServer;
  let fixtures: ImageFixtures;
  let work: string;
  let fleet: TestFleet;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-ingest-'));
    fixtures = buildImageFixtures(join(work, 'fixtures'));
    server = await startTestServer(kind, { FERRY_MAX_RELEASE_BYTES: String(32 * 1024 * 1024) });
    fleet = await createFleet(server, 'Ingest');
  });
  afterAll(async () => {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  const push = (body: Buffer): Promise<Response> => pushArchive(server.url, fleet.slug, ADMIN_TOKEN, body);

  /** The server still serves HTTP and a device over MQTT. */
  const stillServing = async (): Promise<void> => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const device = await registerDevice(server, fleet);
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    try {
      expect(await client.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 })).toHaveLength(1);
    } finally {
      await client.endAsync(true);
    }
  };

  it('accepts a docker-archive whose layers are gzip-compressed', async () => {
    const archive = join(work, 'gz.docker.tar');
    gzipLayersOf(fixtures.v1Docker, archive);
    const response = await push(readFileSync(archive));
    expect(response.status).toBe(201);
  });

  it('refuses a gzip-compressed layer with one flipped bit with 422 naming the layer, and keeps serving', async () => {
    const archive = join(work, 'flipped.docker.tar');
    const { layers } = gzipLayersOf(fixtures.v2Docker, archive, {
      layer: 0,
      edit: (gz) => {
        const copy = Buffer.from(gz);
        copy[Math.floor(copy.length / 2)] = (copy[Math.floor(copy.length / 2)] as number) ^ 0x10;
        return copy;
      },
    });
    const blobsBefore = filesUnder(join(server.dataDir, 'blobs'));
    const releasesBefore = await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).text();
    const response = await push(readFileSync(archive));
    expect(response.status).toBe(422);
    const { message } = (await response.json()) as { message: string };
    expect(message).toContain(`layer 1 (${layers[0]})`);
    expect(message).toMatch(/not valid gzip/);
    expect(filesUnder(join(server.dataDir, 'tmp'))).toEqual([]);
    expect(filesUnder(join(server.dataDir, 'blobs'))).toEqual(blobsBefore);
    expect(await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).text()).toBe(releasesBefore);
    await stillServing();
  });

  it('refuses an archive gzip-compressed as a whole that expands 1000x (outer gzip bomb), leaving nothing', async () => {
    const layer = gnuTarLayer(join(work, 'bomb'), { 'app/ok': 'fine' });
    const archive = await dockerArchive([layer], {
      extra: [{ name: 'padding', body: Buffer.alloc(100 * 1024 * 1024) }],
    });
    const body = gzipSync(archive, { level: 9 });
    expect(archive.length / body.length).toBeGreaterThan(900);
    const blobsBefore = filesUnder(join(server.dataDir, 'blobs'));
    const response = await push(body);
    expect(response.status).toBe(422);
    expect(((await response.json()) as { message: string }).message).toMatch(
      /expands more than 100x when decompressed \(suspected gzip bomb/,
    );
    expect(filesUnder(join(server.dataDir, 'tmp'))).toEqual([]);
    expect(filesUnder(join(server.dataDir, 'blobs'))).toEqual(blobsBefore);
  });

  it('refuses an archive gzip-compressed as a whole that expands past FERRY_MAX_RELEASE_BYTES with 413', async () => {
    const layer = gnuTarLayer(join(work, 'big'), { 'app/ok': 'fine' });
    // Hex text compresses about 2x: 20 MB on the wire, 40 MB inside, over the 32 MiB limit.
    const archive = await dockerArchive([layer], {
      extra: [{ name: 'notes.txt', body: noise(7, 20 * 1024 * 1024).toString('hex') }],
    });
    const body = gzipSync(archive, { level: 1 });
    expect(body.length).toBeLessThan(server.config.limits.maxReleaseBytes);
    const response = await push(body);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { message: string }).message).toMatch(
      /expands past the 33554432-byte limit when decompressed \(FERRY_MAX_RELEASE_BYTES\)/,
    );
    expect(filesUnder(join(server.dataDir, 'tmp'))).toEqual([]);
  });

  describe('many images sharing one large config', () => {
    const layer = (): Buffer => gnuTarLayer(join(work, 'shared'), { 'app/shared': 'one layer for all' });
    /** A docker-archive of `count` images (svc-1:1 …) that all name the same 2 MB config and layer. */
    const sharedConfigArchive = async (count: number): Promise<Buffer> => {
      const tar = layer();
      const config = JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
        history: Array.from({ length: 20_000 }, (_, i) => ({
          created_by: `RUN step ${i} ${'x'.repeat(80)}`,
        })),
      });
      const configName = `${sha256(config).slice(7)}.json`;
      const manifest = Array.from({ length: count }, (_, i) => ({
        Config: configName,
        RepoTags: [`svc-${i + 1}:1`],
        Layers: ['shared/layer.tar'],
      }));
      return tarOf([
        { name: 'shared/layer.tar', body: tar },
        { name: configName, body: config },
        { name: 'manifest.json', body: JSON.stringify(manifest) },
      ]);
    };

    /** Pushes `body` while measuring how long the server's event loop (this process) was blocked. */
    const pushMeasured = async (
      body: Buffer,
    ): Promise<{ status: number; text: string; maxBlockedMs: number }> => {
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      try {
        const response = await push(body);
        return { status: response.status, text: await response.text(), maxBlockedMs: delay.max / 1e6 };
      } finally {
        delay.disable();
      }
    };

    it('refuses 1,000 images with the per-release image cap at once, without blocking the event loop', async () => {
      const healthz: Promise<number>[] = [];
      const poll = setInterval(() => healthz.push(fetch(`${server.url}/healthz`).then((r) => r.status)), 20);
      let measured: Awaited<ReturnType<typeof pushMeasured>>;
      try {
        measured = await pushMeasured(await sharedConfigArchive(1000));
      } finally {
        clearInterval(poll);
      }
      expect(measured.status).toBe(413);
      expect(measured.text).toMatch(
        /archive holds 1000 images; a release takes at most 64 \(FERRY_MAX_IMAGES_PER_RELEASE\)/,
      );
      // The old reader parsed the 2 MB config once per image, synchronously: seconds of blocked loop.
      expect(measured.maxBlockedMs).toBeLessThan(1000);
      expect(await Promise.all(healthz)).toEqual(healthz.map(() => 200));
      expect(filesUnder(join(server.dataDir, 'tmp'))).toEqual([]);
    });

    it('stores 64 images sharing one config (the cap)', async () => {
      const { status, text, maxBlockedMs } = await pushMeasured(await sharedConfigArchive(64));
      expect(status).toBe(201);
      const release = JSON.parse(text) as { services: { name: string; configDigest: string }[] };
      expect(release.services).toHaveLength(64);
      expect(new Set(release.services.map((s) => s.configDigest)).size).toBe(1);
      expect(maxBlockedMs).toBeLessThan(1000);
    });
  });

  it('stores layers umoci insert wrote without end-of-archive padding byte for byte, and deltas between them rebuild them exactly', async () => {
    const images = umociInsertImages(join(work, 'umoci'));
    const pushed: Release[] = [];
    for (const archive of [images.v1Docker, images.v2Oci]) {
      const response = await push(readFileSync(archive));
      expect(response.status).toBe(201);
      pushed.push((await response.json()) as Release);
    }
    const stored = async (diffId: string): Promise<Buffer> =>
      Buffer.from(await (await server.api(`/v1/blobs/${diffId}`)).arrayBuffer());
    const [v1, v2] = pushed.map((release) => release.services[0]?.layers ?? []);
    if (!v1 || !v2) throw new Error('no layers');
    // Each stored layer is the exact tar umoci wrote (gunzipped), and some end without padding.
    const written = readdirSync(join(images.layout, 'blobs', 'sha256'))
      .map((hex) => readFileSync(join(images.layout, 'blobs', 'sha256', hex)))
      .filter((blob) => blob[0] === 0x1f && blob[1] === 0x8b)
      .map((blob) => gunzipSync(blob));
    for (const layer of [...v1, ...v2]) {
      const bytes = await stored(layer.diffId);
      expect(sha256(bytes)).toBe(layer.diffId);
      expect(written.some((tar) => tar.equals(bytes))).toBe(true);
    }
    expect([...v1, ...v2].some((layer) => layer.size % 512 !== 0)).toBe(true);
    // A delta from v1's app layer to v2's rebuilds v2's byte for byte.
    const dir = join(work, 'umoci-delta');
    mkdirSync(dir, { recursive: true });
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    writeFileSync(base, await stored((v1[1] as ReleaseLayer).diffId));
    writeFileSync(target, await stored((v2[1] as ReleaseLayer).diffId));
    await encodeDelta({ bases: [base], target, out: join(dir, 'delta'), tempDir: dir });
    await applyDelta({ delta: join(dir, 'delta'), bases: [base], out: join(dir, 'rebuilt.tar') });
    expect(readFileSync(join(dir, 'rebuilt.tar')).equals(readFileSync(target))).toBe(true);
  });
});
