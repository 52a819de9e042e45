import { createHash } from 'node:crypto';
import {
  BatchSize,
  DeltaRecord,
  LayerChoiceKind,
  PlannedDevice,
  Release,
  ReleaseLayer,
  RolloutStrategy,
  TagFilter,
  ValidationError,
  isPinned,
} from '@ferry/protocol';
import { chooseDownload } from '../targets/layer-choice';

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

/** At most this many batches; a ramp that would need more puts the rest in the last one. */
export const MAX_BATCHES = 100;

/**
 * Batch sizes by exponential ramp (AWS IoT Jobs' rate increase) for `total` devices: batch k (from 0)
 * holds `ceil(base × factor^k)` devices, at most `max`, until all have one. `{ base: 1, factor: 2 }`
 * of 20 devices → `[1, 2, 4, 8, 5]`; with `max: 5` → `[1, 2, 4, 5, 5, 3]`.
 */
export function rampBatches(ramp: NonNullable<RolloutStrategy['ramp']>, total: number): number[] {
  const sizes: number[] = [];
  let done = 0;
  for (let k = 0; done < total; k += 1) {
    if (sizes.length === MAX_BATCHES - 1) {
      sizes.push(total - done);
      break;
    }
    const size = Math.min(ramp.max ?? Infinity, Math.ceil(ramp.base * ramp.factor ** k - 1e-9), total - done);
    sizes.push(size);
    done += size;
  }
  return sizes;
}

/** A strategy's batch sizes for `total` devices: its ramp when it has one, else its list of batch ends. */
export function strategyBatches(
  strategy: Pick<RolloutStrategy, 'batches' | 'ramp'>,
  total: number,
): number[] {
  return strategy.ramp ? rampBatches(strategy.ramp, total) : resolveBatches(strategy.batches, total);
}

/** How far ahead a rollout may be scheduled. */
export const MAX_SCHEDULE_AHEAD_MS = 365 * 24 * 3600 * 1000;

/** Checks a strategy's start time: at most a year after `now` (a time already past starts at once). */
export function checkStartAt(startAt: string | undefined, now: number): void {
  if (startAt === undefined) return;
  if (Date.parse(startAt) - now > MAX_SCHEDULE_AHEAD_MS)
    throw new ValidationError(`strategy.startAt: ${startAt} is more than a year ahead`, {
      field: 'strategy.startAt',
    });
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

/** A device's place in the order drawn from `seed`: a keyed hash, so it does not depend on list order. */
function drawnRank(seed: number, uuid: string): string {
  return createHash('sha256').update(`${seed}:${uuid}`).digest('hex');
}

/**
 * Which devices a rollout covers, in the order they are updated: online devices first (a canary that
 * is offline would only time out), then in an order drawn from `seed` (not by name or age, so the
 * same devices do not always take the first batch; the same seed gives the same order). Pinned
 * devices and those already on the release are left alone.
 */
export function selectDevices(
  devices: readonly CandidateDevice[],
  releaseId: string,
  tagFilter: TagFilter | null,
  seed: number,
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
  const rank = new Map(selection.eligible.map((d) => [d.uuid, drawnRank(seed, d.uuid)]));
  selection.eligible.sort(
    (a, b) =>
      Number(b.online) - Number(a.online) ||
      rank.get(a.uuid)!.localeCompare(rank.get(b.uuid)!) ||
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
