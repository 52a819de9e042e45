import { matchBlocks } from './block-matcher';
import { BaseCatalog, normaliseVersions } from './candidates';
import type { TarEntry, TarIndex } from './tar-index';
import { noise } from './testing/fixtures';

const entry = (path: string, size: number, contentHash = `h-${path}`): TarEntry => ({
  start: 0,
  dataOffset: 512,
  size,
  end: 512 + size,
  path,
  type: '0',
  headerHash: `hdr-${path}`,
  contentHash,
  zeroData: false,
  zeroPadding: true,
});
const index = (...entries: TarEntry[]): TarIndex => ({
  file: 'x',
  size: 0,
  digest: '',
  entries,
  tailOffset: 0,
});

describe('similar-file lookup', () => {
  it('normalises version numbers and hashes in paths', () => {
    expect(normaliseVersions('lib/foo-1.2.3/x')).toBe(normaliseVersions('lib/foo-1.2.4/x'));
    expect(normaliseVersions('usr/lib/libx.so.1.2')).toBe(normaliseVersions('usr/lib/libx.so.1.3'));
    expect(normaliseVersions('static/app.3f9a02c1.js')).toBe(normaliseVersions('static/app.77e01b3d.js'));
    expect(normaliseVersions('lib/foo/x')).not.toBe(normaliseVersions('lib/bar/x'));
  });

  it('prefers the same path, then versioned path, then name, then extension and size', () => {
    const catalog = new BaseCatalog([
      index(entry('usr/bin/tool', 1000), entry('usr/lib/libz.so.1.2.11', 5000)),
      index(entry('opt/app/main.js', 3000), entry('opt/other/readme.md', 100), entry('srv/blob.bin', 8000)),
    ]);
    expect(catalog.similar(entry('usr/bin/tool', 1200))?.entry.path).toBe('usr/bin/tool');
    expect(catalog.similar(entry('usr/lib/libz.so.1.3.1', 5100))?.entry.path).toBe('usr/lib/libz.so.1.2.11');
    expect(catalog.similar(entry('srv/www/main.js', 2000))?.entry.path).toBe('opt/app/main.js');
    expect(catalog.similar(entry('data/other.bin', 7500))).toMatchObject({
      base: 1,
      entry: { path: 'srv/blob.bin' },
    });
    expect(catalog.similar(entry('data/other.bin', 100))).toBeUndefined();
    expect(catalog.sameContent(entry('anywhere', 100, 'h-opt/other/readme.md'))?.entry.path).toBe(
      'opt/other/readme.md',
    );
  });
});

describe('block matcher', () => {
  it('finds moved and shifted blocks and covers the whole target in order', () => {
    const ref = noise(200_000, 5);
    const target = Buffer.concat([ref.subarray(100_000, 150_000), noise(1000, 6), ref.subarray(0, 60_000)]);
    const runs = matchBlocks(ref, target);
    let at = 0;
    for (const run of runs) {
      expect(run.targetOffset).toBe(at);
      if (run.refOffset >= 0) {
        expect(
          Buffer.compare(
            ref.subarray(run.refOffset, run.refOffset + run.length),
            target.subarray(at, at + run.length),
          ),
        ).toBe(0);
      }
      at += run.length;
    }
    expect(at).toBe(target.length);
    const literal = runs.filter((r) => r.refOffset < 0).reduce((n, r) => n + r.length, 0);
    expect(literal).toBeLessThan(1100);
  });

  it('returns one literal run when nothing matches or inputs are tiny', () => {
    expect(matchBlocks(noise(10_000, 1), noise(5000, 2))).toEqual([
      { refOffset: -1, targetOffset: 0, length: 5000 },
    ]);
    expect(matchBlocks(Buffer.alloc(3), Buffer.from('abc'))).toEqual([
      { refOffset: -1, targetOffset: 0, length: 3 },
    ]);
  });
});
