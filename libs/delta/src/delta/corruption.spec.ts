import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  applyDelta,
  createDeltaReadStream,
  DeltaBaseMismatchError,
  DeltaCorruptError,
  DeltaError,
  DeltaFormatError,
  DeltaTargetMismatchError,
  DeltaTruncatedError,
  DeltaUnsupportedVersionError,
  encodeDelta,
  readDeltaInfo,
} from '.';
import { DeltaWriter } from './delta-writer';
import { noise, prose, removeDir, scratchDir, sha256Hex, writeTar } from './testing/fixtures';

let dir: string;
let base: string;
let target: string;
let delta: string;

beforeEach(async () => {
  dir = await scratchDir();
  base = join(dir, 'base.tar');
  target = join(dir, 'target.tar');
  delta = join(dir, 'good.delta');
  const text = prose(200_000, 5);
  const changed = Buffer.from(text);
  changed.write('CHANGED', 1000);
  await writeTar(base, [
    { name: 'a.txt', data: text },
    { name: 'b.bin', data: noise(100_000, 6) },
  ]);
  await writeTar(target, [
    { name: 'a.txt', data: changed },
    { name: 'c.bin', data: noise(50_000, 7) },
  ]);
  await encodeDelta({ bases: [base], target, out: delta });
});
afterEach(async () => {
  await removeDir(dir);
});

/** Applying must fail with `kind` and leave neither the output nor a partial file behind. */
async function expectRejected(deltaFile: string, kind: new (...args: never[]) => DeltaError, bases = [base]) {
  const out = join(dir, 'out', 'rebuilt.tar');
  await mkdir(join(dir, 'out'), { recursive: true });
  await expect(applyDelta({ bases, delta: deltaFile, out })).rejects.toBeInstanceOf(kind);
  expect(await readdir(join(dir, 'out'))).toEqual([]);
}

/** A delta made of hand-written operations with a valid checksum, to reach the operation checks. */
async function craft(ops: (w: DeltaWriter) => Promise<void>, targetDigest?: string, targetSize = 1000) {
  const out = join(dir, 'crafted.delta');
  const writer = await DeltaWriter.create(dir);
  try {
    await ops(writer);
    const baseBytes = await readFile(base);
    await writer.finish(out, {
      targetDigest: targetDigest ?? createHash('sha256').update('x').digest('hex'),
      targetSize,
      bases: [{ digest: createHash('sha256').update(baseBytes).digest('hex'), size: baseBytes.length }],
    });
  } finally {
    await writer.dispose();
  }
  return out;
}

describe('hostile and damaged deltas', () => {
  it('applies the untouched delta (control)', async () => {
    const out = join(dir, 'ok.tar');
    await applyDelta({ bases: [base], delta, out });
    expect(await sha256Hex(out)).toBe(await sha256Hex(target));
  });

  it('rejects a delta with a flipped byte anywhere, leaving no output', async () => {
    const good = await readFile(delta);
    const positions = [
      0,
      8,
      9,
      20,
      60,
      Math.floor(good.length / 3),
      Math.floor(good.length / 2),
      good.length - 40,
      good.length - 1,
    ];
    for (const position of positions) {
      const bad = Buffer.from(good);
      bad[position] = bad[position]! ^ 0x40;
      const file = join(dir, `flip-${position}.delta`);
      await writeFile(file, bad);
      await expectRejected(file, DeltaError);
    }
    const flipped = Buffer.from(good);
    flipped[good.length - 40] = flipped[good.length - 40]! ^ 1;
    await writeFile(join(dir, 'body.delta'), flipped);
    await expectRejected(join(dir, 'body.delta'), DeltaCorruptError);
  });

  it('names the error for bad magic and unknown versions', async () => {
    const good = await readFile(delta);
    const magic = Buffer.from(good);
    magic.write('NOTDELTA', 0);
    await writeFile(join(dir, 'magic.delta'), magic);
    await expectRejected(join(dir, 'magic.delta'), DeltaFormatError);
    const version = Buffer.from(good);
    version[8] = 9;
    await writeFile(join(dir, 'version.delta'), version);
    await expectRejected(join(dir, 'version.delta'), DeltaUnsupportedVersionError);
    await writeFile(join(dir, 'text.delta'), 'hello, I am a text file and not a delta at all');
    await expectRejected(join(dir, 'text.delta'), DeltaFormatError);
  });

  it('rejects truncated deltas at every kind of cut', async () => {
    const good = await readFile(delta);
    for (const length of [3, 16, 40, good.length - 100, good.length - 1]) {
      const file = join(dir, `cut-${length}.delta`);
      await writeFile(file, good.subarray(0, length));
      await expectRejected(file, DeltaTruncatedError);
    }
    await writeFile(join(dir, 'long.delta'), Buffer.concat([good, Buffer.from('extra')]));
    await expectRejected(join(dir, 'long.delta'), DeltaCorruptError);
  });

  it('refuses the wrong base, a changed base and the wrong number of bases', async () => {
    await expectRejected(delta, DeltaBaseMismatchError, [target]);
    const changed = join(dir, 'changed-base.tar');
    const bytes = await readFile(base);
    bytes[700] = bytes[700]! ^ 1;
    await writeFile(changed, bytes);
    await expectRejected(delta, DeltaBaseMismatchError, [changed]);
    await copyFile(base, join(dir, 'base-copy.tar'));
    await expectRejected(delta, DeltaBaseMismatchError, [base, join(dir, 'base-copy.tar')]);
  });

  it('bounds-checks operations even when the checksum is valid', async () => {
    const baseSize = (await readFile(base)).length;
    await expectRejected(await craft((w) => w.copy(0, baseSize - 10, 20)), DeltaCorruptError);
    await expectRejected(await craft((w) => w.insert(Buffer.alloc(2000, 1))), DeltaCorruptError);
    await expectRejected(await craft((w) => w.zero(1001)), DeltaCorruptError);
    await expectRejected(
      await craft((w) => w.patch(0, baseSize - 5, 10, [5, 0, 0], Buffer.alloc(5), Buffer.alloc(0))),
      DeltaCorruptError,
    );
    // Controls claiming more output than the patch declares (the CVE-2020-14315 shape).
    await expectRejected(
      await craft((w) => w.patch(0, 0, 100, [20, 0, 0], Buffer.alloc(10), Buffer.alloc(0))),
      DeltaCorruptError,
    );
    // A huge seek cannot make the patcher read outside its old range.
    await expectRejected(
      await craft((w) =>
        w.patch(0, 0, 100, [0, 0, 2 ** 53 - 1, 10, 0, 0], Buffer.alloc(10), Buffer.alloc(0)),
      ),
      DeltaCorruptError,
    );
  });

  it('errors the stream API instead of ending cleanly on a mismatch', async () => {
    const file = await craft((w) => w.zero(1000));
    const stream = createDeltaReadStream({ bases: [base], delta: file });
    const read = async () => {
      for await (const _ of stream) void _;
    };
    await expect(read()).rejects.toBeInstanceOf(DeltaTargetMismatchError);
  });

  it('reports corruption from info too', async () => {
    const good = await readFile(delta);
    good[good.length - 50] = good[good.length - 50]! ^ 1;
    await writeFile(join(dir, 'bad.delta'), good);
    await expect(readDeltaInfo(join(dir, 'bad.delta'))).rejects.toBeInstanceOf(DeltaCorruptError);
  });
});
