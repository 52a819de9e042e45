import { createHash } from 'node:crypto';
import { link, mkdir, readdir, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  applyDelta,
  createDeltaReadStream,
  DeltaInputError,
  encodeDelta,
  indexTar,
  readDeltaInfo,
  type EncodeDeltaOptions,
} from '.';
import { noise, prose, removeDir, run, scratchDir, sha256Hex, writeTar } from './testing/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await scratchDir();
});
afterEach(async () => {
  await removeDir(dir);
});

/** Encodes, applies through the file API, and checks the rebuilt layer is byte-identical. */
async function roundTrip(bases: string[], target: string, options: Partial<EncodeDeltaOptions> = {}) {
  const delta = join(dir, 'layer.delta');
  const result = await encodeDelta({ ...options, bases, target, out: delta });
  const out = join(dir, 'rebuilt.tar');
  const applied = await applyDelta({ bases, delta, out });
  const want = await sha256Hex(target);
  expect(await sha256Hex(out)).toBe(want);
  expect(applied.digest).toBe(want);
  expect(result.header.targetDigest).toBe(want);
  const deltaSize = (await stat(delta)).size;
  expect(result.size).toBe(deltaSize);
  return { ...result, deltaSize, targetSize: (await stat(target)).size, delta };
}

/** Adds one to every `every`-th byte: scattered small edits like a rebuilt binary. */
function mutate(buf: Buffer, every: number, seed = 7): Buffer {
  const copy = Buffer.from(buf);
  for (let i = seed; i < copy.length; i += every) copy[i] = (copy[i]! + 1) & 0xff;
  return copy;
}

/** Makes a tar of `folder` with GNU tar in the given format, sorted and with fixed metadata. */
async function gnuTar(out: string, folder: string, format: string, extra: string[] = []) {
  await run('tar', [
    '--sort=name',
    '--mtime=2024-01-01 00:00Z',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    `--format=${format}`,
    ...extra,
    '-cf',
    out,
    '-C',
    folder,
    '.',
  ]);
}

describe('delta round trips', () => {
  it('rebuilds a changed native binary with a delta far smaller than the binary', async () => {
    const busybox = await readFile('/bin/busybox');
    const changed = Buffer.concat([
      mutate(busybox.subarray(0, 400_000), 5000),
      noise(3000, 3),
      busybox.subarray(400_000),
    ]);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', data: busybox, mode: 0o755 },
    ]);
    await writeTar(target, [
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', data: changed, mode: 0o755 },
    ]);
    const r = await roundTrip([base], target);
    // 3000 new random bytes cannot shrink; everything else should cost little.
    expect(r.deltaSize).toBeLessThan(6_000);
  });

  it('survives renames, moves and version bumps in paths with a small delta', async () => {
    const lib = noise(300_000, 11);
    const so = noise(200_000, 12);
    const text = prose(150_000, 13);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [
      { name: 'usr/lib/foo-1.2.3/foo.bin', data: lib },
      { name: 'usr/lib/libx.so.1.2', data: so },
      { name: 'app/old-name.js', data: text },
    ]);
    await writeTar(target, [
      { name: 'usr/lib/foo-1.2.4/foo.bin', data: mutate(lib, 20_000) },
      { name: 'usr/lib/libx.so.1.3', data: mutate(so, 25_000) },
      { name: 'srv/moved/new-name.js', data: text },
    ]);
    const r = await roundTrip([base], target);
    expect(r.choices.copy).toBe(1);
    expect(r.choices.patch + r.choices.match).toBe(2);
    expect(r.deltaSize).toBeLessThan(3_000);
  });

  it('copies files that moved between two base layers (multi-base)', async () => {
    const a = noise(120_000, 21);
    const b = noise(90_000, 22);
    const c = prose(60_000, 23);
    const base1 = join(dir, 'base1.tar');
    const base2 = join(dir, 'base2.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base1, [{ name: 'opt/a.bin', data: a }]);
    await writeTar(base2, [
      { name: 'etc/b.bin', data: b },
      { name: 'etc/c.txt', data: c },
    ]);
    await writeTar(target, [
      { name: 'etc/a.bin', data: a },
      { name: 'opt/b.bin', data: b },
      { name: 'etc/c.txt', data: Buffer.concat([c, Buffer.from('\nappended line\n')]) },
    ]);
    const r = await roundTrip([base1, base2], target);
    expect(r.header.bases).toHaveLength(2);
    expect(r.choices.copy).toBe(2);
    expect(r.deltaSize).toBeLessThan(1_500);
  });

  it('rebuilds an empty layer, and an empty layer from an empty base', async () => {
    const empty = join(dir, 'empty.tar');
    await writeTar(empty, []);
    const base = join(dir, 'base.tar');
    await writeTar(base, [{ name: 'x', data: 'x' }]);
    await roundTrip([base], empty);
    const r = await roundTrip([empty], empty);
    expect(r.stats.insert.count).toBe(0);
    const zeroBytes = join(dir, 'zero-bytes.tar');
    await writeFile(zeroBytes, '');
    await roundTrip([base], zeroBytes);
  });

  it('handles a large file window by window when it exceeds the in-memory cap', async () => {
    const big = noise(6 * 2 ** 20, 31);
    const changed = mutate(big, 100_000);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [{ name: 'data/big.img', data: big }]);
    await writeTar(target, [{ name: 'data/big.img', data: changed }]);
    const r = await roundTrip([base], target, { matcherMaxSize: 2 ** 20, patchMaxSize: 2 ** 20 });
    expect(r.choices.windowed).toBe(1);
    expect(r.deltaSize).toBeLessThan(big.length / 100);
  });

  it('patches a file over the cap window by window with a cover search, not only block matching', async () => {
    // A binary-like file with a change every 64 bytes: block matches stay short, covers do not.
    const big = noise(3 * 2 ** 20, 33);
    const changed = mutate(big, 64);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [{ name: 'lib/big.so', data: big }]);
    await writeTar(target, [{ name: 'lib/big.so', data: changed }]);
    const options = { matcherMaxSize: 2 ** 20, windowSize: 2 ** 20 };
    const r = await roundTrip([base], target, options);
    expect(r.choices.windowed).toBe(1);
    expect(r.stats.patch.bytes).toBeGreaterThan(big.length / 2);
    expect(r.deltaSize).toBeLessThan(big.length / 20);
  });

  it('rebuilds hard links, symlinks and directories written by GNU tar', async () => {
    const root = join(dir, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await writeFile(join(root, 'bin/tool'), noise(50_000, 41));
    await link(join(root, 'bin/tool'), join(root, 'bin/tool-alias'));
    await symlink('tool', join(root, 'bin/tool-link'));
    const base = join(dir, 'base.tar');
    await gnuTar(base, root, 'gnu');
    await writeFile(join(root, 'bin/tool'), mutate(noise(50_000, 41), 10_000));
    await link(join(root, 'bin/tool'), join(root, 'bin/tool-third'));
    const target = join(dir, 'target.tar');
    await gnuTar(target, root, 'gnu');
    const members = (await indexTar(target)).entries.map((e) => [e.path, e.type]);
    expect(members).toContainEqual(['bin/tool-third', '1']);
    expect(members).toContainEqual(['bin/tool-link', '2']);
    await roundTrip([base], target);
  });

  it.each(['pax', 'gnu'])('rebuilds %s long names (over 100 characters)', async (format) => {
    const root = join(dir, 'root');
    const deep = join(root, 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(40));
    await mkdir(deep, { recursive: true });
    const name = `${'long-file-name-'.repeat(8)}.txt`;
    await writeFile(join(deep, name), prose(40_000, 51));
    const base = join(dir, 'base.tar');
    await gnuTar(base, root, format);
    await writeFile(join(deep, name), Buffer.concat([prose(40_000, 51), Buffer.from('one more line\n')]));
    const target = join(dir, 'target.tar');
    await gnuTar(target, root, format);
    const paths = (await indexTar(target)).entries.map((e) => e.path);
    expect(paths).toContain(`${deep.slice(root.length + 1)}/${name}`);
    const r = await roundTrip([base], target);
    expect(r.deltaSize).toBeLessThan(1_000);
  });

  it('rebuilds zero-filled and GNU sparse files', async () => {
    const root = join(dir, 'root');
    await mkdir(root);
    await writeFile(join(root, 'zeros.img'), Buffer.alloc(3 * 2 ** 20));
    const sparse = join(root, 'sparse.img');
    await writeFile(sparse, 'head');
    await truncate(sparse, 4 * 2 ** 20);
    const base = join(dir, 'base.tar');
    await gnuTar(base, root, 'gnu', ['--sparse']);
    await writeFile(join(root, 'zeros2.img'), Buffer.alloc(2 ** 20));
    const target = join(dir, 'target.tar');
    await gnuTar(target, root, 'gnu', ['--sparse']);
    expect((await indexTar(target)).entries.map((e) => e.type)).toContain('S');
    const r = await roundTrip([base], target);
    expect(r.deltaSize).toBeLessThan(1_000);
  });

  it('rebuilds bytes that are not a tar at all', async () => {
    const base = join(dir, 'base.bin');
    const target = join(dir, 'target.bin');
    await writeFile(base, noise(100_000, 61));
    await writeFile(target, Buffer.concat([noise(1000, 62), noise(100_000, 61)]));
    await roundTrip([base], target);
  });

  it('streams the rebuilt layer through createDeltaReadStream', async () => {
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    const data = prose(500_000, 71);
    await writeTar(base, [{ name: 'a.txt', data }]);
    await writeTar(target, [
      { name: 'a.txt', data: mutate(data, 50_000) },
      { name: 'b.bin', data: noise(700_000, 72) },
    ]);
    const delta = join(dir, 'd.delta');
    await encodeDelta({ bases: [base], target, out: delta });
    const hash = createHash('sha256');
    for await (const chunk of createDeltaReadStream({ bases: [base], delta })) hash.update(chunk as Buffer);
    expect(hash.digest('hex')).toBe(await sha256Hex(target));
    const info = await readDeltaInfo(delta);
    expect(
      info.stats.insert.bytes + info.stats.copy.bytes + info.stats.patch.bytes + info.stats.zero.bytes,
    ).toBe(info.header.targetSize);
  });

  it('reports progress by phase and leaves nothing behind when the input is unusable', async () => {
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [{ name: 'a', data: prose(100_000, 81) }]);
    await writeTar(target, [{ name: 'a', data: prose(120_000, 81) }]);
    const phases = new Set<string>();
    const delta = join(dir, 'd.delta');
    await encodeDelta({ bases: [base], target, out: delta, onProgress: (p) => phases.add(p.phase) });
    expect([...phases]).toEqual(['index', 'encode', 'compress']);
    const written: number[] = [];
    await applyDelta({ bases: [base], delta, out: join(dir, 'out.tar'), onProgress: (n) => written.push(n) });
    expect(written.at(-1)).toBe((await stat(target)).size);

    const before = (await readdir(dir)).sort();
    await expect(
      encodeDelta({ bases: [join(dir, 'missing.tar')], target, out: join(dir, 'x.delta') }),
    ).rejects.toBeInstanceOf(DeltaInputError);
    await expect(encodeDelta({ bases: [], target, out: join(dir, 'x.delta') })).rejects.toBeInstanceOf(
      DeltaInputError,
    );
    expect((await readdir(dir)).sort()).toEqual(before);
  });

  it('uses a base that is not a tar as plain bytes', async () => {
    const base = join(dir, 'base.bin');
    const target = join(dir, 'target.tar');
    const data = noise(80_000, 91);
    await writeFile(base, Buffer.concat([Buffer.from('garbage header'), data]));
    await writeTar(target, [{ name: 'x.bin', data }]);
    await roundTrip([base], target);
  });

  it('finds code that moved between files across the whole base set (a bundle split in two)', async () => {
    const core = prose(150_000, 21);
    const glue = noise(40_000, 22);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    // Old: one bundle holding core + glue. New: the core moved to its own, differently named file.
    await writeTar(base, [{ name: 'build/bundle.module.js', data: Buffer.concat([core, glue]) }]);
    await writeTar(target, [
      { name: 'build/bundle.core.js', data: mutate(core, 5000) },
      {
        name: 'build/bundle.module.js',
        data: Buffer.concat([Buffer.from('import "./bundle.core.js";\n'), glue]),
      },
    ]);
    const withGlobal = await roundTrip([base], target);
    expect(withGlobal.choices.global + withGlobal.choices.patch).toBeGreaterThanOrEqual(1);
    const perFileOnly = await roundTrip([base], target, { globalIndexBudget: 0 });
    // Per file, the new core file has no similar old file and is sent as new bytes.
    expect(withGlobal.deltaSize * 4).toBeLessThan(perFileOnly.deltaSize);
  });

  it('keeps within an explicit memory budget by falling back to cheaper matching, not by failing', async () => {
    const text = prose(190_000, 31);
    const base = join(dir, 'base.tar');
    const target = join(dir, 'target.tar');
    await writeTar(base, [{ name: 'app/main.js', data: text }]);
    await writeTar(target, [{ name: 'app/main.js', data: mutate(text, 3000) }]);
    const roomy = await roundTrip([base], target);
    expect(roomy.choices.patch + roomy.choices.global).toBe(1);
    // Half a MiB: neither the whole-base index (bases + table) nor a cover index (~9x the file) fits.
    const tight = await roundTrip([base], target, { memoryBudget: 512 * 1024 });
    expect(tight.choices.patch + tight.choices.global).toBe(0);
    expect(tight.choices.match).toBe(1);
  });
});
