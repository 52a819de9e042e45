import { CoverIndex, coverDiff, type CoverSearchOptions } from './cover-search';
import { bspatch } from './testing/bspatch';
import { noise } from './testing/fixtures';

const SEARCHES: [string, CoverSearchOptions][] = [
  ['every position, long chains', { maxChain: 512, step: 1 }],
  ['every other position, short chains', { maxChain: 16, step: 2 }],
];

/** `data` with a byte changed every `every` bytes, a run cut out and another inserted. */
function edited(data: Buffer, every: number, seed: number): Buffer {
  const out = Buffer.from(data);
  for (let i = every >> 1; i < out.length; i += every) out[i] = (out[i]! + 1) & 0xff;
  const cut = out.length >> 2;
  return Buffer.concat([out.subarray(0, cut), noise(300, seed), out.subarray(cut + 500)]);
}

function rebuilds(old: Buffer, neu: Buffer, options: CoverSearchOptions): ReturnType<typeof coverDiff> {
  const patch = coverDiff(old, neu, options);
  expect(bspatch(old, patch.controls, patch.diff, patch.extra).equals(neu)).toBe(true);
  const adds = patch.controls.filter((_, i) => i % 3 === 0).reduce((a, b) => a + b, 0);
  const extras = patch.controls.filter((_, i) => i % 3 === 1).reduce((a, b) => a + b, 0);
  expect([adds, extras]).toEqual([patch.diff.length, patch.extra.length]);
  return patch;
}

describe.each(SEARCHES)('coverDiff (%s)', (_name, options) => {
  it('rebuilds edge inputs exactly: empty, shorter than a hash, identical, unrelated', () => {
    const text = noise(5000, 1);
    const cases: [Buffer, Buffer][] = [
      [Buffer.alloc(0), Buffer.alloc(0)],
      [Buffer.alloc(0), text],
      [text, Buffer.alloc(0)],
      [Buffer.from('abcdefg'), Buffer.from('abcdefg')],
      [text, text],
      [text, noise(5000, 2)],
    ];
    for (const [old, neu] of cases) rebuilds(old, neu, options);
    // Identical bytes are one cover of zero differences.
    const same = rebuilds(text, text, options);
    expect(same.extra.length).toBe(0);
    expect(same.diff.every((b) => b === 0)).toBe(true);
  });

  it('covers shifted, edited data with few extra bytes', () => {
    const old = noise(400_000, 3);
    const neu = edited(old, 64, 4);
    const patch = rebuilds(old, neu, options);
    // The 300 inserted bytes (and little else) are extra; the rest are covers of the old bytes.
    expect(patch.extra.length).toBeLessThan(1000);
    const nonZero = patch.diff.reduce((n, b) => n + (b === 0 ? 0 : 1), 0);
    expect(nonZero).toBeLessThan(neu.length / 50);
  });

  it('rebuilds degenerate inputs (long runs of one byte, a short period repeated) exactly', () => {
    const zeros = Buffer.alloc(300_000);
    const period = Buffer.alloc(200_000);
    for (let i = 0; i < period.length; i++) period[i] = i % 7;
    // Each run is one cover: the index holds a run's start, not every position inside it.
    expect(
      rebuilds(zeros, Buffer.concat([zeros, Buffer.from([1]), zeros]), options).controls.length,
    ).toBeLessThanOrEqual(3 * 3);
    const shifted = rebuilds(
      period,
      Buffer.concat([period.subarray(3), Buffer.alloc(5000, 9), period]),
      options,
    );
    expect(shifted.controls.length).toBeLessThanOrEqual(4 * 3);
    expect(shifted.extra.length).toBeLessThan(5100);
    rebuilds(zeros, period, options);
  });

  it('rebuilds randomly edited inputs exactly (property, 40 seeds)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const old = noise(2000 + seed * 97, seed);
      const r = noise(64, seed + 1000);
      let neu = Buffer.from(old);
      for (let k = 0; k < 8; k++) {
        const at = (r.readUInt16LE(k * 4) * neu.length) >> 16;
        const op = r[k * 4 + 2]! % 3;
        if (op === 0) neu[at] = r[k * 4 + 3]!;
        else if (op === 1)
          neu = Buffer.concat([neu.subarray(0, at), noise(r[k * 4 + 3]!, seed + k), neu.subarray(at)]);
        else
          neu = Buffer.concat([neu.subarray(0, at), neu.subarray(Math.min(neu.length, at + r[k * 4 + 3]!))]);
      }
      rebuilds(old, neu, options);
    }
  });
});

describe('CoverIndex.cost', () => {
  it('counts the old bytes, a chain entry per indexed position and the hash slots', () => {
    expect(CoverIndex.cost(16 * 2 ** 20)).toBe(16 * 2 ** 20 + 4 * 16 * 2 ** 20 + 4 * 2 ** 24);
    expect(CoverIndex.cost(16 * 2 ** 20, 2)).toBe(16 * 2 ** 20 + 4 * 8 * 2 ** 20 + 4 * 2 ** 23);
    expect(CoverIndex.cost(100)).toBe(100 + 400 + 4 * 4096);
  });
});
