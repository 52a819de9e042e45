import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { applyDelta, encodeDelta } from '.';
import { noise, removeDir, scratchDir, sha256File, writeTar } from './testing/fixtures';

let dir: string;
beforeEach(async () => {
  dir = await scratchDir();
});
afterEach(async () => {
  await removeDir(dir);
});

/** Encodes, applies through the file API, and checks the rebuilt layer is byte-identical. */
async function roundTrip(bases: string[], target: string) {
  const delta = join(dir, 'layer.delta');
  const result = await encodeDelta({ bases, target, out: delta });
  const out = join(dir, 'rebuilt.tar');
  const applied = await applyDelta({ bases, delta, out });
  const want = await sha256File(target);
  expect(await sha256File(out)).toBe(want);
  expect(applied.digest).toBe(want);
  expect(result.header.targetDigest).toBe(want);
  return { ...result, deltaSize: (await stat(delta)).size, targetSize: (await stat(target)).size, delta };
}

function mutate(buf: Buffer, every: number, seed = 7): Buffer {
  const copy = Buffer.from(buf);
  for (let i = seed; i < copy.length; i += every) copy[i] = (copy[i]! + 1) & 0xff;
  return copy;
}

describe('delta round trips', () => {
  it('rebuilds a changed native binary and stays far smaller than the binary', async () => {
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
    expect(r.deltaSize).toBeLessThan(20_000);
  });
});
