import { DeltaRecord, Release } from '@ferry/protocol';
import { projectDownload } from './rollout-planner';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const layer = (c: string, gzipSize: number) => ({
  diffId: digest(c),
  size: gzipSize * 3,
  gzipDigest: digest('9'),
  gzipSize,
});

function release(id: string, layers: ReturnType<typeof layer>[]): Release {
  const services = [{ name: 'main', image: null, configDigest: digest('0'), layers }];
  return {
    id,
    fleetId: 'f',
    version: 1,
    note: null,
    createdAt: '',
    services,
    totalSize: 0,
    manifest: { schemaVersion: 1, fleetId: 'f', releaseId: id, version: 1, createdAt: '', services },
    signature: '',
    ownerSignatures: null,
  };
}

function delta(
  bases: string[],
  target: string,
  size: number,
  state: DeltaRecord['state'] = 'ready',
): DeltaRecord {
  return {
    key: `${bases.join()}>${target}`,
    bases,
    target,
    state,
    digest: digest('d'),
    size,
    targetSize: 0,
    targetGzipSize: 0,
    savings: null,
    error: null,
    createdAt: '',
    updatedAt: '',
  };
}

describe('projected download of a rollout', () => {
  const v1 = release('v1', [layer('a', 1000), layer('b', 500)]);
  const v2 = release('v2', [layer('a', 1000), layer('c', 600)]);

  it('counts a ready delta from a layer the device holds, nothing for layers it has, and full layers as the comparison', () => {
    const projection = projectDownload(v1, v2, [delta([digest('b')], digest('c'), 40)]);
    expect(projection.layers).toEqual([{ diffId: digest('c'), kind: 'delta', size: 40 }]);
    expect(projection.projectedBytes).toBe(40);
    expect(projection.fullBytes).toBe(600);
  });

  it("falls back to the gzip'd layer when the delta is not ready, needs a base the device lacks, or is not smaller", () => {
    for (const deltas of [
      [delta([digest('b')], digest('c'), 40, 'building')],
      [delta([digest('x')], digest('c'), 40)],
      [delta([digest('b')], digest('c'), 700)],
    ]) {
      const projection = projectDownload(v1, v2, deltas);
      expect(projection.layers).toEqual([{ diffId: digest('c'), kind: 'full', size: 600 }]);
      expect(projection.projectedBytes).toBe(600);
    }
  });

  it('sends every layer in full to a device that runs nothing yet', () => {
    const projection = projectDownload(null, v2, [delta([digest('b')], digest('c'), 40)]);
    expect(projection.projectedBytes).toBe(1600);
    expect(projection.fullBytes).toBe(1600);
  });
});
