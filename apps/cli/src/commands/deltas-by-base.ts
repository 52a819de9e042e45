import type { DeltaRecord, Release } from '@ferry/protocol';

/** What a device running one older release downloads to reach the target release. */
export interface BaseDownload {
  base: Release;
  /** Layers of the target the device lacks. */
  layersNeeded: number;
  /** Of those, layers with a ready delta from this base. */
  deltasReady: number;
  /** Deltas from this base still queued or building (their layers count at full size for now). */
  deltasPending: number;
  /** Bytes downloaded now: ready deltas, full gzip'd layers for the rest. */
  downloadBytes: number;
  /** The gzip'd layers it lacks, downloaded whole. */
  fullBytes: number;
}

function targetLayers(release: Release): Map<string, { gzipSize: number }> {
  return new Map(release.services.flatMap((s) => s.layers.map((l) => [l.diffId, l] as const)));
}

/**
 * One row per older release of the fleet: what a device on it downloads for `target`. A delta serves
 * a base when every layer it was built against is one the base release holds; the smallest ready one
 * is taken, as the server does when it answers the device's target.
 */
export function downloadsByBase(target: Release, older: Release[], deltas: DeltaRecord[]): BaseDownload[] {
  const layers = targetLayers(target);
  return [...older]
    .sort((a, b) => b.version - a.version)
    .map((base) => {
      const held = new Set(base.services.flatMap((s) => s.layers.map((l) => l.diffId)));
      const row: BaseDownload = {
        base,
        layersNeeded: 0,
        deltasReady: 0,
        deltasPending: 0,
        downloadBytes: 0,
        fullBytes: 0,
      };
      for (const [diffId, layer] of layers) {
        if (held.has(diffId)) continue;
        row.layersNeeded += 1;
        row.fullBytes += layer.gzipSize;
        const usable = deltas.filter((d) => d.target === diffId && d.bases.every((b) => held.has(b)));
        const ready = usable
          .filter((d) => d.state === 'ready' && d.size !== null && d.size < layer.gzipSize)
          .sort((a, b) => (a.size ?? 0) - (b.size ?? 0))[0];
        if (ready) {
          row.deltasReady += 1;
          row.downloadBytes += ready.size ?? 0;
        } else {
          if (usable.some((d) => d.state === 'queued' || d.state === 'building')) row.deltasPending += 1;
          row.downloadBytes += layer.gzipSize;
        }
      }
      return row;
    });
}

/** Every layer of the release, gzip'd: what a device with no release downloads. */
export function fullDownloadBytes(target: Release): number {
  return [...targetLayers(target).values()].reduce((sum, l) => sum + l.gzipSize, 0);
}
