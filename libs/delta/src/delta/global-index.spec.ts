import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import { GlobalIndex } from './global-index';
import { readRange } from './pieces';
import { indexTar, type TarIndex } from './tar-index';
import { prose, removeDir, scratchDir, writeTar } from './testing/fixtures';

describe('GlobalIndex', () => {
  let dir: string;
  let handles: FileHandle[];
  let bases: TarIndex[];
  let target: TarIndex;
  const kept = prose(400_000, 1);
  const split = prose(60_000, 2);
  const other = prose(50_000, 3);

  beforeEach(async () => {
    dir = await scratchDir('ferry-global-');
    // Base 0 keeps a large file the target keeps as it is; base 1 has the file whose code moves.
    await writeTar(join(dir, 'b0.tar'), [
      { name: 'usr/lib/kept.so', data: kept },
      { name: 'app/old.js', data: other },
    ]);
    await writeTar(join(dir, 'b1.tar'), [{ name: 'app/bundle.js', data: split }]);
    await writeTar(join(dir, 't.tar'), [
      { name: 'usr/lib/kept.so', data: kept },
      { name: 'app/core.js', data: split.subarray(0, 30_000) },
      { name: 'app/bundle.js', data: split.subarray(30_000) },
    ]);
    bases = [
      await indexTar(join(dir, 'b0.tar'), () => undefined),
      await indexTar(join(dir, 'b1.tar'), () => undefined),
    ];
    target = await indexTar(join(dir, 't.tar'), () => undefined);
    handles = [await open(join(dir, 'b0.tar'), 'r'), await open(join(dir, 'b1.tar'), 'r')];
  });
  afterEach(async () => {
    await Promise.allSettled(handles.map((fh) => fh.close()));
    await removeDir(dir);
  });

  it('leaves out base members the target keeps unchanged, and copies from the right base and offset', async () => {
    const index = (await GlobalIndex.build(bases, handles, target, 64 * 2 ** 20))!;
    // Only app/old.js (base 0) and app/bundle.js (base 1) are indexed, not the 400 kB kept file.
    expect(index.bytes).toBeLessThan(kept.length);

    const moved = split.subarray(0, 30_000);
    const pieces = index.pieces(moved);
    const copies = pieces.filter((p) => p.kind === 'copy');
    expect(copies.reduce((n, p) => n + (p.kind === 'copy' ? p.length : 0), 0)).toBeGreaterThan(29_000);
    for (const piece of copies) {
      if (piece.kind !== 'copy') continue;
      expect(piece.base).toBe(1);
      const bytes = await readRange(handles[piece.base]!, piece.offset, piece.length);
      expect(
        bytes.equals(
          Buffer.from(
            split.subarray(piece.offset - bases[1]!.entries[0]!.dataOffset).subarray(0, piece.length),
          ),
        ),
      ).toBe(true);
    }
    // The member drawn on most, and the span of its data drawn on: what a patch is searched against.
    const dominant = index.dominantMember(pieces)!;
    expect(dominant.member.entry.path).toBe('app/bundle.js');
    expect(dominant.from).toBeLessThan(1000);
    expect(dominant.to).toBeGreaterThan(29_000);
    expect(dominant.to).toBeLessThanOrEqual(30_000);
  });

  it('is not built when the members it would hold and their table exceed the budget', async () => {
    expect(await GlobalIndex.build(bases, handles, target, 64 * 1024)).toBeUndefined();
  });
});
