import {
  BatchSize,
  DeltaRecord,
  LayerChoiceKind,
  PlannedDevice,
  Release,
  ReleaseLayer,
  TagFilter,
  ValidationError,
  isPinned,
} from '@ferry/protocol';
import { chooseDownload } from '../device-target/layer-choice';

/**
 * Turns cumulative batch ends into batch sizes for `total` devices: `[1, "10%", "50%", "100%"]` of 50
 * devices → `[1, 4, 20, 25]`. Percentages round up; an end not past the one before adds nothing (empty
 * batches are dropped); a list ending below `total` gets a last batch with the rest.
 */
export function resolveBatches(spec: readonly BatchSize[], total: number): number[] {
  const sizes: number[] = [];
  let done = 0;
  for (const entry of spec) {
    const end =
      typeof entry === 'number'
        ? Math.min(total, entry)
        : Math.min(total, Math.ceil((Number.parseFloat(entry) * total) / 100 - 1e-9));
    const cumulative = Math.max(end, done);
    if (cumulative > done) sizes.push(cumulative - done);
    done = cumulative;
  }
  if (done < total) sizes.push(total - done);
  return sizes;
}

/** Checks that counts and percentages each grow along the list. */
export function checkBatchSpec(spec: readonly BatchSize[]): void {
  let count = 0;
  let percent = 0;
  for (const entry of spec) {
    if (typeof entry === 'number') {
      if (entry < count)
        throw new ValidationError(
          `strategy.batches: ${entry} comes after ${count}; batch ends are cumulative`,
        );
      count = entry;
    } else {
      const p = Number.parseFloat(entry);
      if (p < percent)
        throw new ValidationError(
          `strategy.batches: ${entry} comes after ${percent}%; batch ends are cumulative`,
        );
      percent = p;
    }
  }
}

export interface CandidateDevice {
  uuid: string;
  name: string;
  online: boolean;
  releaseId: string | null;
  tags: Record<string, string>;
  createdAt: string;
}

export interface Selection {
  eligible: CandidateDevice[];
  pinned: string[];
  upToDate: string[];
  filteredOut: number;
}

/**
 * Which devices a rollout covers, in the order they are updated: online devices first (a canary that
 * is offline would only time out), then oldest first. Pinned devices and those already on the release
 * are left alone.
 */
export function selectDevices(
  devices: readonly CandidateDevice[],
  releaseId: string,
  tagFilter: TagFilter | null,
): Selection {
  const selection: Selection = { eligible: [], pinned: [], upToDate: [], filteredOut: 0 };
  for (const device of devices) {
    if (tagFilter) {
      const value = device.tags[tagFilter.name];
      if (value === undefined || (tagFilter.value !== undefined && value !== tagFilter.value)) {
        selection.filteredOut += 1;
        continue;
      }
    }
    if (isPinned(device.tags)) selection.pinned.push(device.uuid);
    else if (device.releaseId === releaseId) selection.upToDate.push(device.uuid);
    else selection.eligible.push(device);
  }
  selection.eligible.sort(
    (a, b) =>
      Number(b.online) - Number(a.online) ||
      a.createdAt.localeCompare(b.createdAt) ||
      a.uuid.localeCompare(b.uuid),
  );
  return selection;
}

/** The distinct layers of a release, first occurrence first. */
export function releaseLayers(release: Release): ReleaseLayer[] {
  const unique = new Map<string, ReleaseLayer>();
  for (const service of release.services)
    for (const layer of service.layers) if (!unique.has(layer.diffId)) unique.set(layer.diffId, layer);
  return [...unique.values()];
}

/**
 * What a device running `from` would download to get `to`, as `GET /v1/device/target` would answer
 * it now: the smallest ready delta from layers the device holds, else the gzip'd layer.
 */
export function projectDownload(
  from: Release | null,
  to: Release,
  deltas: readonly DeltaRecord[],
): { projectedBytes: number; fullBytes: number; layers: PlannedDevice['layers'] } {
  const held = new Set(from ? releaseLayers(from).map((l) => l.diffId) : []);
  const layers: PlannedDevice['layers'] = [];
  let projectedBytes = 0;
  let fullBytes = 0;
  for (const layer of releaseLayers(to)) {
    if (held.has(layer.diffId)) continue;
    const choice = chooseDownload(layer, [...deltas], held);
    const kind: LayerChoiceKind = choice.kind;
    layers.push({ diffId: layer.diffId, kind, size: choice.size });
    projectedBytes += choice.size;
    fullBytes += layer.gzipSize;
  }
  return { projectedBytes, fullBytes, layers };
}
