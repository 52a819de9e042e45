import { DeltaRecord, LayerDownload, ReleaseLayer } from '@ferry/protocol';

/**
 * How a device should fetch a layer it lacks: the smallest ready delta whose every base the device
 * holds, else the gzip'd full layer.
 */
export function chooseDownload(
  layer: ReleaseLayer,
  deltas: DeltaRecord[],
  held: ReadonlySet<string>,
): LayerDownload {
  const usable = deltas
    .filter((d) => d.target === layer.diffId && d.state === 'ready' && d.digest !== null && d.size !== null)
    .filter((d) => d.bases.every((base) => held.has(base)))
    .filter((d) => (d.size ?? Infinity) < layer.gzipSize)
    .sort((a, b) => (a.size ?? 0) - (b.size ?? 0));
  const best = usable[0];
  if (!best) return { kind: 'full', digest: layer.gzipDigest, size: layer.gzipSize };
  return {
    kind: 'delta',
    digest: best.digest as string,
    size: best.size as number,
    bases: best.bases,
    fallback: { digest: layer.gzipDigest, size: layer.gzipSize },
  };
}
