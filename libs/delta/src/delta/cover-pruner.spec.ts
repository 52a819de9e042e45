import { MIN_COVER, pruneShortCovers } from './cover-pruner';
import { bspatch, randomPatch } from './testing/bspatch';
import { noise } from './testing/fixtures';

describe('pruneShortCovers', () => {
  it('turns covers shorter than the minimum into literals and rebuilds the same bytes', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const old = noise(200_000, seed + 100);
      const patch = randomPatch(seed, old.length);
      const data = bspatch(old, patch.controls, patch.diff, patch.extra);
      const pruned = pruneShortCovers(patch, data);
      expect(bspatch(old, pruned.controls, pruned.diff, pruned.extra).equals(data)).toBe(true);
      for (let c = 0; c < pruned.controls.length; c += 3) {
        const add = pruned.controls[c]!;
        expect(add === 0 || add >= MIN_COVER).toBe(true);
      }
      expect(pruned.diff.length + pruned.extra.length).toBe(data.length);
    }
  });

  it('merges a run of short covers (the first one too) into one control', () => {
    const old = Buffer.from('abcdefghijklmnopqrstuvwxyz'.repeat(10));
    // 5-byte covers far apart in the old file, each followed by one new byte.
    const controls = [5, 1, 100, 5, 1, -50, 5, 1, 7];
    const diff = Buffer.alloc(15);
    const extra = Buffer.from('XYZ');
    const data = bspatch(old, controls, diff, extra);
    const pruned = pruneShortCovers({ controls, diff, extra }, data);
    expect(pruned.controls).toEqual([0, 18, 5 + 100 + 5 - 50 + 5 + 7]);
    expect(pruned.extra.equals(data)).toBe(true);
    expect(pruned.diff.length).toBe(0);
  });

  it('leaves a patch with only long covers untouched', () => {
    const old = noise(10_000, 3);
    const controls = [5000, 10, 0, 4000, 0, 0];
    const diff = Buffer.alloc(9000);
    const extra = noise(10, 4);
    const data = bspatch(old, controls, diff, extra);
    const patch = { controls, diff, extra };
    expect(pruneShortCovers(patch, data)).toBe(patch);
  });
});
