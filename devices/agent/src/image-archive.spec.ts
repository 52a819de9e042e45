import { createHash } from 'node:crypto';
import type { ReleaseService } from '@ferry/protocol/wire';
import { chainIds, imageTag, layersNeedingBytes } from './image-archive';

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const service = (layers: string[]): ReleaseService => ({
  name: 'app',
  image: 'app:1',
  configDigest: d(9),
  layers: layers.map((diffId) => ({ diffId, size: 1, gzipDigest: d(8), gzipSize: 1 })),
});

describe('docker-archive assembly', () => {
  it('computes chain IDs as the image spec does', () => {
    const [a, b] = chainIds([d(1), d(2)]);
    expect(a).toBe(d(1));
    expect(b).toBe(
      `sha256:${createHash('sha256')
        .update(`${d(1)} ${d(2)}`)
        .digest('hex')}`,
    );
  });

  it('sends only the layers after the longest chain the engine holds', () => {
    const held = new Set(chainIds([d(1), d(2)]));
    expect(layersNeedingBytes(service([d(1), d(3)]), held)).toEqual([d(3)]);
    expect(layersNeedingBytes(service([d(1), d(2)]), held)).toEqual([]);
    // A held diffID on another chain still needs its bytes.
    expect(layersNeedingBytes(service([d(2), d(1)]), held)).toEqual([d(2), d(1)]);
  });

  it('tags images ferry-{service}:v{version}', () => {
    expect(imageTag('Web UI', 3)).toBe('ferry-web-ui:v3');
  });
});
