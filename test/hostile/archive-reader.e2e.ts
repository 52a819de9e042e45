import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { archiveLimits, readImageArchive } from '@ferry/delta';
import { FerryError, PayloadTooLargeError, UnusableArchiveError } from '@ferry/protocol';
import { fuzzRuns } from '../support/fuzz';
import { gzipSync } from 'node:zlib';
import { dockerArchive, gnuTarLayer, sha256, tarOf } from '../support/hostile-archives';
import { buildImageFixtures, gzipLayersOf } from '../support/image-fixtures';

/**
 * Property: whatever the bytes, the archive reader either returns images whose every layer matched
 * its diff_id, or refuses with UnusableArchiveError / PayloadTooLargeError — never another error,
 * never a file written outside its staging folder.
 */
// Thousands of cases per property: 30 s on a quiet machine, over 60 s at load 20.
jest.setTimeout(300_000);

describe('image archive reader under hostile input (property-based)', () => {
  let work: string;
  let valid: Buffer;
  let validOci: Buffer;
  let layer: Buffer;
  let realGzLayers: Buffer;
  let n = 0;
  const limits = archiveLimits({ maxArchiveBytes: 8 * 1024 * 1024, ratioFloorBytes: 1024 * 1024 });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-fuzz-archive-'));
    const fixtures = buildImageFixtures(join(work, 'fixtures'));
    validOci = readFileSync(fixtures.v1Oci);
    gzipLayersOf(fixtures.v1Docker, join(work, 'fixtures', 'gz.docker.tar'));
    realGzLayers = readFileSync(join(work, 'fixtures', 'gz.docker.tar'));
    layer = gnuTarLayer(join(work, 'layer'), { 'etc/a': 'a', 'bin/b': 'b'.repeat(3000) });
    valid = await dockerArchive([layer]);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const check = async (bytes: Buffer): Promise<boolean> => {
    const staging = join(work, `s${++n}`);
    try {
      const archive = await readImageArchive(Readable.from([bytes]), staging, limits);
      for (const image of archive.images) {
        expect(image.layers.map((l) => l.diffId)).toEqual(image.config.json.rootfs.diff_ids);
        for (const layer of image.layers) expect(resolve(layer.path).startsWith(staging)).toBe(true);
      }
    } catch (error) {
      if (!(error instanceof UnusableArchiveError || error instanceof PayloadTooLargeError)) {
        throw new Error(`unexpected ${(error as Error).name}: ${(error as Error).message}`);
      }
      expect(error).toBeInstanceOf(FerryError);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    return true;
  };

  const mutate = (base: Buffer) =>
    fc
      .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })
      .chain((flips) =>
        fc.record({
          flips: fc.constant(flips),
          cut: fc.option(fc.nat({ max: base.length }), { nil: undefined }),
        }),
      )
      .map(({ flips, cut }) => {
        const copy = Buffer.from(base);
        for (const [at, value] of flips) copy[at % copy.length] = value;
        return cut === undefined ? copy : copy.subarray(0, cut);
      });

  it('survives byte flips and truncations of a valid docker-archive', async () => {
    await fc.assert(fc.asyncProperty(mutate(valid), check), { numRuns: fuzzRuns(1500) });
  });

  it('survives byte flips of a skopeo-made OCI archive', async () => {
    await fc.assert(fc.asyncProperty(mutate(validOci), check), { numRuns: fuzzRuns(300) });
  });

  it('survives byte flips and truncations inside a gzip-compressed layer of a docker-archive', async () => {
    await fc.assert(
      fc.asyncProperty(mutate(gzipSync(layer)), async (gz) =>
        check(await dockerArchive([gz], { diffIds: [sha256(layer)] })),
      ),
      { numRuns: fuzzRuns(500) },
    );
  });

  it('survives byte flips of a real docker-archive whose layers gzip(1) compressed', async () => {
    await fc.assert(fc.asyncProperty(mutate(realGzLayers), check), { numRuns: fuzzRuns(200) });
  });

  it('survives byte flips and truncations of a docker-archive gzip-compressed as a whole', async () => {
    await fc.assert(fc.asyncProperty(mutate(gzipSync(valid)), check), { numRuns: fuzzRuns(1000) });
  });

  it('survives archives of random members with hostile names, links and bodies', async () => {
    const name = fc.oneof(
      fc.constantFrom(
        'manifest.json',
        'index.json',
        'oci-layout',
        '../x',
        '/abs',
        'a/../../b',
        './ok',
        'blobs/sha256/x',
      ),
      fc.string({ minLength: 1, maxLength: 120 }),
    );
    const member = fc.record({
      name,
      type: fc.constantFrom('file' as const, 'symlink' as const, 'link' as const, 'directory' as const),
      linkname: fc.oneof(
        fc.constantFrom('../../etc', '/etc/passwd', 'manifest.json', 'a'),
        fc.string({ maxLength: 40 }),
      ),
      body: fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 300 })),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(member, { maxLength: 6 }), async (members) => {
        const body = await tarOf(
          members.map((m) =>
            m.type === 'file'
              ? { name: m.name, body: m.body }
              : { name: m.name, type: m.type, linkname: m.linkname },
          ),
        );
        return check(body);
      }),
      { numRuns: fuzzRuns(1500) },
    );
  });

  it('left nothing behind in the work folder', () => {
    expect(readdirSync(work).sort()).toEqual(['fixtures', 'layer']);
  });
});
