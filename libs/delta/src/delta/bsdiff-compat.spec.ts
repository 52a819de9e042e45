import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { applyDelta } from '.';
import { pruneShortCovers } from './cover-pruner';
import { coverDiff, type CoverPatch } from './cover-search';
import { FILE_COVER_SEARCH } from './member-planner';
import { parseBsdiff40 } from './testing/bsdiff40';
import { DeltaWriter } from './delta-writer';
import { noise, removeDir, run, scratchDir, sha256Hex } from './testing/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await scratchDir();
});
afterEach(async () => {
  await removeDir(dir);
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A one-operation Ferry delta whose base is the old file itself: one PATCH rebuilding `expected`. */
async function patchDelta(old: Buffer, patch: CoverPatch, expected: Buffer, name: string): Promise<string> {
  const writer = await DeltaWriter.create(dir);
  const out = join(dir, name);
  try {
    await writer.patch(0, 0, old.length, patch.controls, patch.diff, patch.extra);
    await writer.finish(out, {
      targetDigest: sha256(expected),
      targetSize: expected.length,
      bases: [{ digest: sha256(old), size: old.length }],
    });
  } finally {
    await writer.dispose();
  }
  return out;
}

/** Transcodes a BSDIFF40 patch into a one-operation Ferry delta whose base is the old file itself. */
async function transcode(oldFile: string, patchFile: string, expected: Buffer): Promise<string> {
  const parsed = parseBsdiff40(await readFile(patchFile));
  return patchDelta(await readFile(oldFile), parsed, expected, 'transcoded.delta');
}

/** bzip2 through Debian's tool, to hand-build BSDIFF40 patches. */
async function bzip2(data: Buffer, name: string): Promise<Buffer> {
  const file = join(dir, name);
  await writeFile(file, data);
  await run('bzip2', ['-kf9', file]);
  return readFile(`${file}.bz2`);
}

function offtout(value: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt(Math.abs(value)));
  if (value < 0) buf[7] = buf[7]! | 0x80;
  return buf;
}

describe('PATCH operations and Debian bsdiff/bspatch', () => {
  it('rebuilds exactly what Debian bspatch rebuilds from a Debian bsdiff patch of real binaries', async () => {
    const oldFile = '/bin/busybox';
    const newData = Buffer.from(await readFile('/bin/busybox'));
    for (let i = 1000; i < newData.length; i += 40_000) newData.writeUInt32LE(i, i);
    const newFile = join(dir, 'busybox.new');
    await writeFile(
      newFile,
      Buffer.concat([newData.subarray(0, 500_000), noise(2000, 9), newData.subarray(500_000)]),
    );
    const patch = join(dir, 'p.bsdiff');
    await run('bsdiff', [oldFile, newFile, patch]);
    const viaDebian = join(dir, 'debian.out');
    await run('bspatch', [oldFile, viaDebian, patch]);
    const expected = await readFile(viaDebian);
    const delta = await transcode(oldFile, patch, expected);
    const out = join(dir, 'ferry.out');
    await applyDelta({ bases: [oldFile], delta, out });
    expect(await sha256Hex(out)).toBe(sha256(expected));
    expect(sha256(expected)).toBe(await sha256Hex(newFile));
  });

  it("patches a real binary as small as Debian bsdiff does, and its patch rebuilds what Debian's does", async () => {
    // busybox with a 2 kB insertion (every later address shifts) and a word changed every 40 kB.
    const old = await readFile('/bin/busybox');
    const changed = Buffer.from(old);
    for (let i = 1000; i < changed.length; i += 40_000) changed.writeUInt32LE(i, i);
    const neu = Buffer.concat([changed.subarray(0, 500_000), noise(2000, 9), changed.subarray(500_000)]);
    await writeFile(join(dir, 'new'), neu);
    await run('bsdiff', ['/bin/busybox', join(dir, 'new'), join(dir, 'debian.patch')]);
    const debianDelta = await transcode('/bin/busybox', join(dir, 'debian.patch'), neu);

    const ours = pruneShortCovers(coverDiff(old, neu, FILE_COVER_SEARCH), neu);
    const oursDelta = await patchDelta(old, ours, neu, 'cover.delta');
    await applyDelta({ bases: ['/bin/busybox'], delta: oursDelta, out: join(dir, 'ours.out') });
    expect(await sha256Hex(join(dir, 'ours.out'))).toBe(sha256(neu));
    // Within 2 % of bsdiff's suffix-array search (measured: smaller).
    expect((await stat(oursDelta)).size).toBeLessThan((await stat(debianDelta)).size * 1.02);
  });

  // Debian's bspatch reads outside its buffer for negative old positions (real bsdiff never
  // writes them), so only forward, backward-but-positive and past-the-end seeks are compared.
  it('treats old bytes past the old range as zero, like bspatch, for hand-built patches', async () => {
    const old = noise(1000, 5);
    await writeFile(join(dir, 'old'), old);
    // add 300, insert 10, seek +200; add 250, insert 5, seek back to 50; add 100, seek to 950; add 100
    // (across the end: half inside, half outside), seek past the end; add 20 (entirely outside: old
    // bytes count as zero).
    const controls = [300, 10, 200, 250, 5, -700, 100, 0, 800, 100, 0, 2000, 20, 0, 0];
    const diff = noise(770, 6);
    const extra = Buffer.from('0123456789abcde');
    const ctrl = Buffer.concat(controls.map(offtout));
    const ctrlBz = await bzip2(ctrl, 'ctrl');
    const diffBz = await bzip2(diff, 'diff');
    const extraBz = await bzip2(extra, 'extra');
    const header = Buffer.concat([
      Buffer.from('BSDIFF40'),
      offtout(ctrlBz.length),
      offtout(diffBz.length),
      offtout(785),
    ]);
    const patch = join(dir, 'hand.bsdiff');
    await writeFile(patch, Buffer.concat([header, ctrlBz, diffBz, extraBz]));
    await run('bspatch', [join(dir, 'old'), join(dir, 'debian.out'), patch]);
    const expected = await readFile(join(dir, 'debian.out'));
    expect(expected.length).toBe(785);
    const delta = await transcode(join(dir, 'old'), patch, expected);
    await applyDelta({ bases: [join(dir, 'old')], delta, out: join(dir, 'ferry.out') });
    expect((await stat(join(dir, 'ferry.out'))).size).toBe(785);
    expect(await sha256Hex(join(dir, 'ferry.out'))).toBe(sha256(expected));
  });
});
