import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { applyDelta, readDeltaInfo } from '.';
import { DeltaWriter, runLengthEncode } from './delta-writer';
import { noise, removeDir, scratchDir } from './testing/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await scratchDir();
});
afterEach(async () => {
  await removeDir(dir);
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** bsdiff's bspatch over an old range, as the reference the writer and decoder must agree with. */
function bspatch(old: Buffer, controls: number[], diff: Buffer, extra: Buffer): Buffer {
  const out: number[] = [];
  let oldPos = 0;
  let d = 0;
  let e = 0;
  for (let c = 0; c < controls.length; c += 3) {
    for (let i = 0; i < controls[c]!; i++) {
      const o = oldPos + i >= 0 && oldPos + i < old.length ? old[oldPos + i]! : 0;
      out.push((diff[d++]! + o) & 0xff);
    }
    oldPos += controls[c]!;
    for (let i = 0; i < controls[c + 1]!; i++) out.push(extra[e++]!);
    oldPos += controls[c + 2]!;
  }
  return Buffer.from(out);
}

/** Random bsdiff-shaped controls: long mostly-zero add regions, bare seeks, backward seeks. */
function randomPatch(seed: number, oldLength: number) {
  const rnd = noise(4096, seed);
  let r = 0;
  const next = (n: number) => ((rnd.readUInt32LE((r++ * 4) % 4092) >>> 0) % n) | 0;
  const controls: number[] = [];
  let adds = 0;
  let extras = 0;
  for (let c = 0; c < 12; c++) {
    const kind = next(4);
    const add = kind === 0 ? 0 : next(3) === 0 ? 40_000 + next(40_000) : next(300);
    const ext = kind === 0 ? 0 : next(50);
    controls.push(add, ext, next(2) === 0 ? -next(oldLength / 2) : next(oldLength / 3));
    adds += add;
    extras += ext;
  }
  const diff = Buffer.alloc(adds);
  for (let i = 0; i < 40; i++) diff[next(Math.max(1, adds))] = 1 + next(255);
  return { controls, diff: diff.subarray(0, adds), extra: noise(extras, seed + 1) };
}

describe('DeltaWriter patches', () => {
  it('run-length codes diff bytes', () => {
    expect([...runLengthEncode(Buffer.from([0, 0, 0, 5, 6, 0, 7]))]).toEqual([3, 2, 5, 6, 1, 1, 7]);
    expect(runLengthEncode(Buffer.alloc(0)).length).toBe(0);
  });

  it('splits long unchanged runs into copies and still rebuilds exactly what bspatch does', async () => {
    const baseBytes = noise(300_000, 99);
    const basePath = join(dir, 'base');
    await writeFile(basePath, baseBytes);
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
    }
  });
});
