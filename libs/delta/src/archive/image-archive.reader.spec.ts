import { createReadStream, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PayloadTooLargeError, UnusableArchiveError } from '@ferry/protocol';
import { ImageFixtures, buildImageFixtures } from '../../../../test/support/image-fixtures';
import {
  dockerArchive,
  gnuTarLayer,
  gzipBombLayer,
  sha256,
  tarOf,
} from '../../../../test/support/hostile-archives';
import { archiveLimits } from './archive-limits';
import { readImageArchive } from './image-archive.reader';

describe('readImageArchive', () => {
  let work: string;
  let fixtures: ImageFixtures;
  let n = 0;
  const limits = archiveLimits({ maxArchiveBytes: 50 * 1024 * 1024 });
  const staging = (): string => join(work, `staging-${++n}`);

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ferry-archive-'));
    fixtures = buildImageFixtures(join(work, 'fixtures'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.each([
    ['docker-archive', 'v1Docker'],
    ['oci-archive', 'v1Oci'],
  ] as const)(
    'reads a skopeo-made %s with its layers verified against the config diff_ids',
    async (format, key) => {
      const archive = await readImageArchive(createReadStream(fixtures[key]), staging(), limits);
      expect(archive.format).toBe(format);
      expect(archive.images).toHaveLength(1);
      const [image] = archive.images;
      expect(image?.service).toBe('app');
      expect(image?.layers.map((l) => l.diffId)).toEqual(image?.config.json.rootfs.diff_ids);
      expect(image?.layers[0]?.size).toBeGreaterThan(1_000_000);
      expect(image?.layers[0]?.gzipSize).toBeLessThan(image?.layers[0]?.size ?? 0);
    },
  );

  it('sees the same layers in both formats and a changed second layer between versions', async () => {
    const v1 = await readImageArchive(createReadStream(fixtures.v1Docker), staging(), limits);
    const v1oci = await readImageArchive(createReadStream(fixtures.v1Oci), staging(), limits);
    const v2 = await readImageArchive(createReadStream(fixtures.v2Docker), staging(), limits);
    const ids = (a: typeof v1): string[] => a.images[0]?.layers.map((l) => l.diffId) ?? [];
    expect(ids(v1oci)).toEqual(ids(v1));
    expect(ids(v2)[0]).toBe(ids(v1)[0]);
    expect(ids(v2)[1]).not.toBe(ids(v1)[1]);
  });

  it('names services from the tags of a multi-image OCI archive', async () => {
    const archive = await readImageArchive(createReadStream(fixtures.multiOci), staging(), limits);
    expect(archive.images.map((i) => i.service)).toEqual(['web', 'worker']);
  });

  it('accepts an archive gzip-compressed as a whole', async () => {
    const layer = gnuTarLayer(join(work, 'gz'), { 'etc/hello': 'hi' });
    const { gzipSync } = await import('node:zlib');
    const archive = await readImageArchive(
      Readable.from(gzipSync(await dockerArchive([layer]))),
      staging(),
      limits,
    );
    expect(archive.images[0]?.layers[0]?.diffId).toBe(sha256(layer));
  });

  const reject = async (
    body: Buffer,
    error: new (...a: never[]) => Error,
    message: RegExp,
  ): Promise<void> => {
    const dir = staging();
    await expect(readImageArchive(Readable.from(body), dir, limits)).rejects.toThrow(error);
    await expect(readImageArchive(Readable.from(body), `${dir}-again`, limits)).rejects.toThrow(message);
  };

  it('refuses traversal and absolute member names', async () => {
    await reject(await tarOf([{ name: '../evil', body: 'x' }]), UnusableArchiveError, /unsafe member name/);
    await reject(
      await tarOf([{ name: '/etc/passwd', body: 'x' }]),
      UnusableArchiveError,
      /unsafe member name/,
    );
  });

  it('refuses links escaping the archive', async () => {
    const body = await tarOf([{ name: 'a/layer.tar', type: 'symlink', linkname: '../../etc/shadow' }]);
    await reject(body, UnusableArchiveError, /link escapes/);
  });

  it('refuses a layer whose sha256 differs from the diff_id', async () => {
    const layer = gnuTarLayer(join(work, 'mismatch'), { 'a.txt': 'a' });
    const body = await dockerArchive([layer], { diffIds: [sha256('something else')] });
    await reject(body, UnusableArchiveError, /does not match the config's diff_id/);
  });

  it('refuses a truncated archive', async () => {
    const whole = await readFile(fixtures.v1Docker);
    await reject(whole.subarray(0, Math.floor(whole.length / 2)), UnusableArchiveError, /tar|missing/);
  });

  it('refuses an archive without a manifest', async () => {
    await reject(await tarOf([{ name: 'hello.txt', body: 'x' }]), UnusableArchiveError, /missing manifest/);
  });

  it('refuses a gzip bomb layer', async () => {
    const bomb = await gzipBombLayer(64 * 1024 * 1024);
    const body = await dockerArchive([bomb.gz], { diffIds: [bomb.diffId] });
    await reject(body, UnusableArchiveError, /gzip bomb/);
  });

  it('refuses an OCI descriptor that lies about a blob size', async () => {
    const layer = gnuTarLayer(join(work, 'oci-lie'), { x: 'y' });
    const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256(layer)] } });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      config: { digest: sha256(config), size: config.length },
      layers: [{ digest: sha256(layer), size: layer.length + 10 }],
    });
    const index = JSON.stringify({
      schemaVersion: 2,
      manifests: [{ digest: sha256(manifest), size: manifest.length }],
    });
    const blob = (b: string | Buffer): { name: string; body: string | Buffer } => ({
      name: `blobs/sha256/${sha256(b).slice(7)}`,
      body: b,
    });
    const body = await tarOf([
      { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
      { name: 'index.json', body: index },
      blob(config),
      blob(manifest),
      blob(layer),
    ]);
    await reject(body, UnusableArchiveError, /declares \d+ bytes but holds/);
  });

  it('stops reading past the size limit', async () => {
    const small = archiveLimits({ maxArchiveBytes: 100_000 });
    await expect(readImageArchive(createReadStream(fixtures.v1Docker), staging(), small)).rejects.toThrow(
      PayloadTooLargeError,
    );
  });

  it('refuses an archive of more members than the limit, naming it', async () => {
    const few = archiveLimits({ maxArchiveBytes: 50 * 1024 * 1024, maxMembers: 20 });
    const body = await tarOf(Array.from({ length: 21 }, (_, i) => ({ name: `m${i}`, body: 'x' })));
    await expect(readImageArchive(Readable.from(body), staging(), few)).rejects.toThrow(
      'archive has more than 20 members',
    );
  });

  it('refuses a layer with a traversal name inside it', async () => {
    const layer = await tarOf([{ name: '../../root/.ssh/authorized_keys', body: 'key' }]);
    await reject(await dockerArchive([layer]), UnusableArchiveError, /unsafe member name/);
  });

  it('leaves only its staging folder behind, for the caller to remove', async () => {
    const dir = staging();
    await expect(
      readImageArchive(Readable.from(await tarOf([{ name: '../x', body: 'x' }])), dir, limits),
    ).rejects.toThrow();
    expect(readdirSync(work)).toContain(dir.split('/').pop());
  });
});

async function readFile(path: string): Promise<Buffer> {
  const { readFile: read } = await import('node:fs/promises');
  return read(path);
}
