import { Release, ReleaseService } from '@ferry/protocol';
import { planDeltas } from './delta-planner';

const layer = (n: number): { diffId: string; size: number; gzipDigest: string; gzipSize: number } => ({
  diffId: `sha256:${String(n).padStart(64, '0')}`,
  size: 1000 * n,
  gzipDigest: `sha256:${String(n + 500).padStart(64, '0')}`,
  gzipSize: 100 * n,
});
const release = (services: Record<string, number[]>): Release => {
  const list: ReleaseService[] = Object.entries(services).map(([name, layers]) => ({
    name,
    image: `${name}:1`,
    configDigest: layer(999).diffId,
    layers: layers.map(layer),
  }));
  return { services: list } as Release;
};

describe('planDeltas', () => {
  it('plans each layer the device lacks against the same service image it runs', () => {
    const plan = planDeltas(release({ app: [1, 2], db: [1, 5] }), release({ app: [1, 3], db: [1, 6] }));
    expect(plan.map((p) => [p.bases, p.target.diffId])).toEqual([
      [[layer(1).diffId, layer(2).diffId], layer(3).diffId],
      [[layer(1).diffId, layer(5).diffId], layer(6).diffId],
    ]);
  });

  it('plans nothing for layers the device holds, even under another service', () => {
    expect(planDeltas(release({ app: [1, 2], db: [7] }), release({ app: [1, 7] }))).toEqual([]);
  });

  it('uses every old layer as bases for a service that is new', () => {
    const plan = planDeltas(release({ app: [1, 2] }), release({ web: [4] }));
    expect(plan).toEqual([{ bases: [layer(1).diffId, layer(2).diffId], target: layer(4) }]);
  });
});
