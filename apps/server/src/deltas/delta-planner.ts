import { Release, ReleaseLayer } from '@ferry/protocol';

/** One delta to build: a new layer against the layers of the image a device already runs. */
export interface PlannedDelta {
  bases: string[];
  target: ReleaseLayer;
}

/**
 * The deltas a device running `from` needs to move to `to`: for each service of `to`, every layer
 * the device lacks, against the layers of the same service's image in `from` (or, for a service
 * new in `to`, against every layer of `from`). Layers the device already holds need nothing.
 */
export function planDeltas(from: Release, to: Release): PlannedDelta[] {
  const held = new Set(from.services.flatMap((s) => s.layers.map((l) => l.diffId)));
  const everyOldLayer = [...held];
  const planned = new Map<string, PlannedDelta>();
  for (const service of to.services) {
    const old = from.services.find((s) => s.name === service.name);
    const bases = old ? old.layers.map((l) => l.diffId) : everyOldLayer;
    if (bases.length === 0) continue;
    for (const layer of service.layers) {
      if (held.has(layer.diffId)) continue;
      const id = `${bases.join(',')}>${layer.diffId}`;
      if (!planned.has(id)) planned.set(id, { bases, target: layer });
    }
  }
  return [...planned.values()];
}
