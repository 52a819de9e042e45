import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { applyDelta, encodeDelta } from '.';
import { prose, removeDir, run, scratchDir, sha256Hex, writeTar } from './testing/fixtures';

/**
 * Gzip files made by the tools that make them in real layers (npm pack, Python's gzip module on
 * Debian's zlib, GNU gzip), changed between versions: the encoder rebuilds those its deflate
 * reproduces through their contents, and every rebuild is byte-exact either way.
 */
let dir: string;

beforeAll(async () => {
  dir = await scratchDir('ferry-recompress-');
});
afterAll(async () => {
  await removeDir(dir);
});

/** A small npm package whose main file grows a little between versions. */
async function npmPack(version: string, lines: number): Promise<Buffer> {
  const pkg = join(dir, `pkg-${version}`);
  await mkdir(pkg, { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'ferry-fixture', version }));
  await writeFile(join(pkg, 'index.js'), prose(lines * 60, 4));
  await writeFile(join(pkg, 'README.md'), prose(8000, 5));
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: pkg,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  return readFile(join(dir, stdout.trim()));
}

/** `text` with `line` inserted in its middle. */
function withLine(text: Buffer, line: string): Buffer {
  const middle = text.length / 2;
  return Buffer.concat([text.subarray(0, middle), Buffer.from(line), text.subarray(middle)]);
}

async function roundTrip(
  name: string,
  base: { name: string; data: Buffer }[],
  target: { name: string; data: Buffer }[],
) {
  const basePath = join(dir, `${name}-base.tar`);
  const targetPath = join(dir, `${name}-target.tar`);
  const out = join(dir, `${name}.delta`);
  await writeTar(basePath, [{ name: 'app/README', data: prose(2000, 1) }, ...base]);
  await writeTar(targetPath, [{ name: 'app/README', data: prose(2000, 1) }, ...target]);
  const result = await encodeDelta({ bases: [basePath], target: targetPath, out });
  const rebuilt = join(dir, `${name}.rebuilt.tar`);
  const applied = await applyDelta({ bases: [basePath], delta: out, out: rebuilt });
  expect(applied.digest).toBe(await sha256Hex(targetPath));
  expect(await sha256Hex(rebuilt)).toBe(await sha256Hex(targetPath));
  return { ...result, size: (await stat(out)).size };
}

describe('gzip members rebuilt through their contents (format version 3)', () => {
  it('rebuilds an npm-packed .tgz from the previous version’s contents: a delta a tenth of the file', async () => {
    const old = await npmPack('1.0.0', 3000);
    const changed = await npmPack('1.0.1', 3010);
    expect(changed.length).toBeGreaterThan(20_000);
    const r = await roundTrip(
      'npm',
      [{ name: 'app/offline/ferry-fixture-1.0.0.tgz', data: old }],
      [{ name: 'app/offline/ferry-fixture-1.0.1.tgz', data: changed }],
    );
    expect(r.choices.recompressed).toBe(1);
    expect(r.stats.inflate.count).toBe(1);
    // npm's gzip header is 10 bytes, its trailer 8: the rest is the deflate stream rebuilt.
    expect(r.stats.deflate).toEqual({ count: 1, bytes: changed.length - 18 });
    expect(r.size).toBeLessThan(changed.length / 10);
  });

  it('rebuilds what Python’s gzip makes with Debian’s zlib (zlib’s classic hash)', async () => {
    const py = async (text: Buffer) => {
      const file = join(dir, `py-${text.length}`);
      await writeFile(file, text);
      const { stdout } = (await run(
        'python3',
        [
          '-c',
          `import gzip,sys; sys.stdout.buffer.write(gzip.compress(open(sys.argv[1],'rb').read(), 9, mtime=0))`,
          file,
        ],
        { encoding: 'buffer', maxBuffer: 1 << 26 },
      )) as unknown as { stdout: Buffer };
      return stdout;
    };
    const text = prose(400_000, 7);
    const edited = withLine(text, 'a new paragraph\n');
    const r = await roundTrip(
      'python',
      [{ name: 'usr/share/data.json.gz', data: await py(text) }],
      [{ name: 'usr/share/data.json.gz', data: await py(edited) }],
    );
    expect(r.choices.recompressed).toBe(1);
    expect(r.size).toBeLessThan(2000);
  });

  it('keeps as bytes what its deflate cannot reproduce (other settings, two members, bytes after the trailer), still exact', async () => {
    const text = prose(200_000, 8);
    const edited = Buffer.from(text);
    edited.write('changed', 100_000);
    const twoMembers = Buffer.concat([
      gzipSync(edited.subarray(0, 1000), { level: 9 }),
      gzipSync(edited.subarray(1000), { level: 9 }),
    ]);
    const trailing = Buffer.concat([gzipSync(edited, { level: 9 }), Buffer.from('junk after the trailer')]);
    const r = await roundTrip(
      'plain',
      [
        { name: 'a.gz', data: gzipSync(text, { level: 9, windowBits: 12 }) },
        { name: 'b.gz', data: gzipSync(text, { level: 9 }) },
        { name: 'c.gz', data: gzipSync(text, { level: 9 }) },
      ],
      [
        // A 4 KiB window: matches the settings the encoder tries would find further back.
        { name: 'a.gz', data: gzipSync(edited, { level: 9, windowBits: 12 }) },
        { name: 'b.gz', data: twoMembers },
        { name: 'c.gz', data: trailing },
      ],
    );
    expect(r.choices.recompressed).toBe(0);
    expect(r.stats.deflate.count).toBe(0);
  });

  it('rebuilds GNU gzip files exactly, whether or not its deflate reproduces them', async () => {
    const gnu = async (data: Buffer, name: string) => {
      await writeFile(join(dir, name), data);
      await run('gzip', ['-9n', '-f', join(dir, name)]);
      return readFile(join(dir, `${name}.gz`));
    };
    const text = prose(300_000, 9);
    const edited = withLine(text, 'one more line\n');
    const r = await roundTrip(
      'gnu',
      [{ name: 'usr/share/doc/x/changelog.gz', data: await gnu(text, 'gnu-old') }],
      [{ name: 'usr/share/doc/x/changelog.gz', data: await gnu(edited, 'gnu-new') }],
    );
    expect(
      r.choices.recompressed + r.choices.patch + r.choices.match + r.choices.literal + r.choices.global,
    ).toBe(1);
  });

  it('recompresses a .tar.gz whose old version the base holds uncompressed, from those bytes', async () => {
    const plain = prose(300_000, 12);
    const gz = gzipSync(plain, { level: 6 });
    const r = await roundTrip(
      'fresh',
      [{ name: 'data/b.tar', data: plain }],
      [
        { name: 'data/a.tgz', data: gzipSync(prose(100_000, 11), { level: 6 }) },
        { name: 'data/b.tar.gz', data: gz },
      ],
    );
    expect(r.choices.recompressed).toBeGreaterThanOrEqual(1);
    expect(r.stats.inflate.count).toBe(0);
    expect(r.stats.copy.bytes).toBeGreaterThanOrEqual(plain.length - 1);
  });

  it('leaves no unpacked members behind, encoding or applying', async () => {
    const names = await readdir(dir);
    expect(names.filter((n) => n.includes('inflated'))).toEqual([]);
  });
});
