import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { applyDelta, readDeltaInfo } from '.';
import { DeltaWriter, runLengthEncode } from './delta-writer';
import { bspatch, randomPatch } from './testing/bspatch';
import { noise, removeDir, scratchDir } from './testing/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await scratchDir();
});
afterEach(async () => {
  await removeDir(dir);
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('DeltaWriter patches', () => {
  it('run-length codes diff bytes', () => {
    expect([...runLengthEncode(Buffer.from([0, 0, 0, 5, 6, 0, 7]))]).toEqual([3, 2, 5, 6, 1, 1, 7]);
    expect(runLengthEncode(Buffer.alloc(0)).length).toBe(0);
  });

  it('splits long unchanged runs into copies and still rebuilds exactly what bspatch does', async () => {
    const baseBytes = noise(300_000, 99);
    const basePath = join(dir, 'base');
    await writeFile(basePath, baseBytes);
    let splitCopies = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const oldOffset = 1000 + seed;
      const oldLength = 200_000;
      const { controls, diff, extra } = randomPatch(seed, oldLength);
      const expected = Buffer.concat([
        baseBytes.subarray(10, 600),
        bspatch(baseBytes.subarray(oldOffset, oldOffset + oldLength), controls, diff, extra),
        baseBytes.subarray(5, 50),
      ]);
      const writer = await DeltaWriter.create(dir);
      const delta = join(dir, `p${seed}.delta`);
      try {
        await writer.copy(0, 10, 590);
        await writer.patch(0, oldOffset, oldLength, controls, diff, extra);
        await writer.copy(0, 5, 45);
        await writer.finish(delta, {
          targetDigest: sha256(expected),
          targetSize: expected.length,
          bases: [{ digest: sha256(baseBytes), size: baseBytes.length }],
        });
      } finally {
        await writer.dispose();
      }
      const out = join(dir, `p${seed}.out`);
      await applyDelta({ bases: [basePath], delta, out });
      expect(sha256(await readFile(out))).toBe(sha256(expected));
      const info = await readDeltaInfo(delta);
      expect(info.stats.copy.bytes + info.stats.patch.bytes).toBe(expected.length);
      splitCopies += info.stats.copy.count - 2;
    }
    // Some of the seeds have unchanged runs long enough to leave the patch as copies of their own
    // (beyond the two copies written above).
    expect(splitCopies).toBeGreaterThan(0);
  });
});

describe('DeltaWriter compression', () => {
  /** A delta of one base whose target is the base plus `inserted` new bytes (the literal section). */
  async function literalDelta(
    inserted: Buffer,
    compression: { strongLimit?: number; literalStrongLimit?: number; windowBits?: number } = {},
  ) {
    const base = noise(1000, 7);
    const basePath = join(dir, 'base');
    await writeFile(basePath, base);
    const expected = Buffer.concat([base, inserted]);
    const writer = await DeltaWriter.create(dir, compression);
    const delta = join(dir, 'literal.delta');
    let early = false;
    try {
      await writer.copy(0, 0, base.length);
      // In 256 KiB steps, as the encoder writes: the section is flushed (and followed) as it grows.
      for (let at = 0; at < inserted.length; at += 256 * 1024)
        await writer.insert(inserted.subarray(at, at + 256 * 1024));
      early = (await readdir(dir)).some((name) => name.endsWith('.literal.br'));
      await writer.finish(delta, {
        targetDigest: sha256(expected),
        targetSize: expected.length,
        bases: [{ digest: sha256(base), size: base.length }],
      });
    } finally {
      await writer.dispose();
    }
    const out = join(dir, 'literal.out');
    await applyDelta({ bases: [basePath], delta, out });
    expect(sha256(await readFile(out))).toBe(sha256(expected));
    return { info: await readDeltaInfo(delta), early };
  }

  // 12 MiB of text-like bytes: the literal section passes its 4 MiB window while it is written.
  const text = Buffer.from(
    Array.from({ length: 12 * 2 ** 20 }, (_, i) => 97 + (((i * 7919) % 26) ** 2 % 26)),
  );

  it('compresses a section larger than its window while it is written, and the delta rebuilds its target', async () => {
    const { info, early } = await literalDelta(text);
    // Its compressed file was being written before finish() was called.
    expect(early).toBe(true);
    expect(info.header.literal.rawSize).toBe(text.length);
    expect(info.header.literal.compressedSize).toBeLessThan(text.length / 50);
    expect((await readdir(dir)).filter((name) => name.endsWith('.raw') || name.endsWith('.br'))).toEqual([]);
  });

  // 2 MiB of words drawn at random from a small vocabulary: quality 9 and 11 differ on it.
  const words = (() => {
    const vocabulary = Array.from({ length: 400 }, (_, i) => `w${((i * 2654435761) >>> 0).toString(36)} `);
    let seed = 7;
    const parts: string[] = [];
    for (let length = 0; length < 2 * 2 ** 20;) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const word = vocabulary[seed % vocabulary.length]!;
      parts.push(word);
      length += word.length;
    }
    return Buffer.from(parts.join('')).subarray(0, 2 * 2 ** 20);
  })();

  it.each([{ strongLimit: 2 ** 20 }, { literalStrongLimit: 2 ** 20 }])(
    'starts again at quality 9 when a section outgrows the strong limit while it is written (%j)',
    async (limits) => {
      // A 256 KiB window: compression follows the section from its first 256 KiB.
      const strong = await literalDelta(words, { windowBits: 18 });
      const { info, early } = await literalDelta(words, { windowBits: 18, ...limits });
      expect(early).toBe(true);
      expect(info.header.literal.rawSize).toBe(words.length);
      // Quality 9 for the whole section: larger than quality 11 makes it.
      expect(info.header.literal.compressedSize).toBeGreaterThan(strong.info.header.literal.compressedSize);
      expect(info.header.literal.compressedSize).toBeLessThan(words.length / 3);
      expect((await readdir(dir)).filter((name) => name.endsWith('.raw') || name.endsWith('.br'))).toEqual(
        [],
      );
    },
  );
});
