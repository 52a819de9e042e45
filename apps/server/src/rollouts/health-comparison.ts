import {
  HEALTH_KINDS,
  HealthComparison,
  HealthGroupFigure,
  HealthKind,
  HealthKindComparison,
  HealthVerdict,
} from '@ferry/protocol';
import { fisherGreater, holm, wilsonInterval } from './health-statistics';

/** What one group of devices did over the comparison window. */
export interface GroupHealth {
  devices: number;
  /** Per kind, devices with at least one event. */
  affected: Partial<Record<HealthKind, number>>;
  /** Per kind, events in all. */
  events: Partial<Record<HealthKind, number>>;
}

/** Both groups over the same window, as the comparison reads them. */
export interface HealthWindow {
  from: string;
  to: string;
  updated: GroupHealth;
  control: GroupHealth;
}

/** Event counts of one device over a window, by kind (the `device_health_events` sums). */
export type DeviceHealthCounts = ReadonlyMap<string, number>;

/** Sums the counts of a group's devices; a device with no row had no event. */
export function groupHealth(
  uuids: readonly string[],
  counts: ReadonlyMap<string, DeviceHealthCounts>,
): GroupHealth {
  const group: GroupHealth = { devices: uuids.length, affected: {}, events: {} };
  for (const uuid of uuids) {
    for (const [kind, n] of counts.get(uuid) ?? []) {
      if (n <= 0) continue;
      const k = kind as HealthKind;
      group.affected[k] = (group.affected[k] ?? 0) + 1;
      group.events[k] = (group.events[k] ?? 0) + n;
    }
  }
  return group;
}

/** The kinds a comparison looks at: the built-in ones, then the configured app metrics. */
export function comparedKinds(options: HealthComparison): HealthKind[] {
  return [...HEALTH_KINDS, ...options.metrics.map((m): HealthKind => `metric:${m}`)];
}

function figure(group: GroupHealth, kind: HealthKind): HealthGroupFigure {
  const affected = group.affected[kind] ?? 0;
  const { low, high } = wilsonInterval(affected, group.devices);
  return { affected, events: group.events[kind] ?? 0, low: low * 100, high: high * 100 };
}

const percent = (k: number, n: number): number => (n === 0 ? 0 : (k * 100) / n);
const round = (x: number, digits: number): number => Number(x.toFixed(digits));
const formatP = (p: number): string => (p < 0.0001 ? p.toExponential(1) : p.toPrecision(2));

/**
 * Judges the updated group against the control group: per kind, the share of devices affected in
 * each, Fisher's one-sided exact test of "the updated group is affected more often", Holm's correction
 * over the kinds, and the margin. A kind is worse when its difference exceeds `marginPercent` points
 * and its p-value passes Holm's step and at least `minAffected` updated devices are affected; the
 * batch is worse when any kind is. Pure.
 */
export function judgeHealth(
  window: HealthWindow,
  options: HealthComparison,
  interim: boolean,
): HealthVerdict {
  const { updated, control } = window;
  const base = {
    interim,
    from: window.from,
    to: window.to,
    marginPercent: options.marginPercent,
    alpha: options.alpha,
    minAffected: options.minAffected,
    updated: { devices: updated.devices },
    control: { devices: control.devices },
  };
  const kinds = comparedKinds(options);
  const rows = kinds.map((kind) => {
    const u = figure(updated, kind);
    const c = figure(control, kind);
    return {
      kind,
      updated: u,
      control: c,
      differencePercent: percent(u.affected, updated.devices) - percent(c.affected, control.devices),
      pValue:
        updated.devices > 0 && control.devices > 0
          ? fisherGreater(u.affected, updated.devices, c.affected, control.devices)
          : 1,
    };
  });
  if (updated.devices === 0 || control.devices === 0) {
    const verdict = updated.devices === 0 ? 'no-updated' : 'no-control';
    return {
      ...base,
      verdict,
      kinds: rows.map((r) => ({ ...r, threshold: null, worse: false })),
      summary:
        verdict === 'no-updated'
          ? 'no updated device to judge'
          : 'no device left on the old release to compare with (the last batch is not judged)',
    };
  }
  const tests = holm(
    rows.map((r) => r.pValue),
    options.alpha,
  );
  const compared: HealthKindComparison[] = rows.map((r, i) => ({
    ...r,
    threshold: tests[i]?.threshold ?? null,
    worse:
      (tests[i]?.significant ?? false) &&
      r.differencePercent > options.marginPercent &&
      r.updated.affected >= options.minAffected,
  }));
  const worse = compared.filter((k) => k.worse);
  const line = (k: HealthKindComparison): string =>
    `${k.kind}: ${k.updated.affected} of ${updated.devices} updated devices vs ${k.control.affected} of ${control.devices} on the old release (+${round(k.differencePercent, 1)} points, p = ${formatP(k.pValue)} < ${formatP(k.threshold ?? 0)})`;
  if (worse.length > 0)
    return {
      ...base,
      verdict: 'worse',
      kinds: compared,
      summary: `worse than the control group: ${worse.map(line).join('; ')}`,
    };
  const smallest = [...compared].sort((x, y) => x.pValue - y.pValue)[0];
  return {
    ...base,
    verdict: 'ok',
    kinds: compared,
    summary: `not worse than the control group by more than ${options.marginPercent} points with significance${smallest ? ` (smallest p = ${formatP(smallest.pValue)}, ${smallest.kind})` : ''}`,
  };
}

/**
 * Who is compared while batch `batchNumber` bakes: the updated group is its devices up on the release
 * (`verifying`, or `succeeded` once it passed); the control group is the rollout's devices in later
 * batches, not told yet: same fleet, same tag filter, still on their old release.
 */
export function healthGroups(
  devices: readonly { uuid: string; batch: number; state: string }[],
  batchNumber: number,
): { updated: string[]; control: string[] } {
  return {
    updated: devices
      .filter((d) => d.batch === batchNumber && (d.state === 'verifying' || d.state === 'succeeded'))
      .map((d) => d.uuid),
    control: devices.filter((d) => d.batch > batchNumber && d.state === 'pending').map((d) => d.uuid),
  };
}

/** A batch's bake window up to `now` (epoch ms): from when it started baking to its bake end at most. */
export function bakeWindow(
  batch: { bakeUntil: string | null },
  bakeSeconds: number,
  now: number,
): { from: string; to: string } | null {
  if (batch.bakeUntil === null) return null;
  const end = Date.parse(batch.bakeUntil);
  return {
    from: new Date(end - bakeSeconds * 1000).toISOString(),
    to: new Date(Math.min(now, end)).toISOString(),
  };
}
