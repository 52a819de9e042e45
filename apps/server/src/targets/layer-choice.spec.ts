import { DeltaRecord } from '@ferry/protocol';
import { chooseDownload } from './layer-choice';

const d = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;
const layer = { diffId: d(9), size: 10_000, gzipDigest: d(90), gzipSize: 4000 };
const delta = (bases: number[], size: number, state: DeltaRecord['state'] = 'ready'): DeltaRecord => ({
  key: `k${bases.join()}${size}`,
  bases: bases.map(d),
  target: d(9),
  state,
  digest: d(100 + size),
  size,
  targetSize: 10_000,
  targetGzipSize: 4000,
  savings: null,
  error: null,
  createdAt: '',
  updatedAt: '',
});

describe('chooseDownload', () => {
  it('offers the smallest ready delta whose bases the device holds', () => {
    const choice = chooseDownload(
      layer,
      [delta([1, 2], 300), delta([1], 200), delta([3], 50)],
      new Set([d(1), d(2)]),
    );
    expect(choice).toEqual({
      kind: 'delta',
      digest: d(300),
      size: 200,
      bases: [d(1)],
      fallback: { digest: d(90), size: 4000 },
    });
  });

  it('never offers a delta against a base the device lacks (balena-supervisor #1631)', () => {
    expect(chooseDownload(layer, [delta([3], 50)], new Set([d(1)]))).toEqual({
      kind: 'full',
      digest: d(90),
      size: 4000,
    });
    // Every base: holding one of a delta's two bases is not enough.
    expect(chooseDownload(layer, [delta([1, 3], 50)], new Set([d(1)])).kind).toBe('full');
  });

  it('ignores deltas that are not ready or not smaller than the gzip', () => {
    const choice = chooseDownload(layer, [delta([1], 100, 'building'), delta([1], 5000)], new Set([d(1)]));
    expect(choice.kind).toBe('full');
  });
});
