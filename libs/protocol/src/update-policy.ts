// Zod-free like maintenance-window.ts: the device agent bundles this through `@ferry/protocol/wire`.
import {
  MAINTENANCE_WAIT,
  insideWindow,
  nextWindowOpening,
  parseMaintenanceWindow,
} from './maintenance-window';

/**
 * When and how fast a device may take an update (docs/rollouts.md "Maintenance windows and metered
 * links"), carried in its signed target. A device downloads only inside a download window and at most
 * at the rate cap, and installs (stops, swaps and starts containers) only inside a maintenance window.
 */
export interface UpdatePolicy {
  /** Weekly windows (`Mon-Fri 02:00-04:00 Europe/Berlin`) installs may start in; empty: any time. */
  maintenanceWindows: string[];
  /** Weekly windows downloads may run in; empty: any time. A download cut by a window's end resumes. */
  downloadWindows: string[];
  /** Download rate cap in bytes per second; 0: no cap. */
  downloadRate: number;
}

/** What a fleet, a tag or a device sets; a field left null is not set at that level. */
export interface UpdatePolicySettings {
  maintenanceWindows: string[] | null;
  downloadWindows: string[] | null;
  /** Bytes per second; 0 lifts a cap set at a broader level. */
  downloadRate: number | null;
}

/** Where a policy entry applies: the whole fleet, devices with one tag value, or one device. */
export type UpdatePolicyScope =
  { kind: 'fleet' } | { kind: 'tag'; tag: string; value: string } | { kind: 'device'; uuid: string };

export interface UpdatePolicyEntry extends UpdatePolicySettings {
  scope: UpdatePolicyScope;
  updatedAt: string;
}

/** A device's policy with, per field, the level it comes from (null: nothing set, the default). */
export interface EffectiveUpdatePolicy extends UpdatePolicy {
  sources: Record<keyof UpdatePolicy, string | null>;
}

/** What a device reports (`deferred`, in `error`) while its downloads wait for a download window. */
export const DOWNLOAD_WAIT = 'waiting for download window';

export const NO_UPDATE_POLICY: UpdatePolicy = {
  maintenanceWindows: [],
  downloadWindows: [],
  downloadRate: 0,
};

function scopeName(scope: UpdatePolicyScope): string {
  if (scope.kind === 'tag') return `tag ${scope.tag}=${scope.value}`;
  return scope.kind;
}

/**
 * The policy of one device: per field, the device's own setting, else its tags' (windows of several
 * matching tags add up: any of them will do; of several rate caps the lowest holds), else the fleet's,
 * else none (any time, no cap).
 */
export function effectiveUpdatePolicy(
  entries: UpdatePolicyEntry[],
  device: { uuid: string; tags: Record<string, string> },
): EffectiveUpdatePolicy {
  const own = entries.filter((e) => e.scope.kind === 'device' && e.scope.uuid === device.uuid);
  const tags = entries
    .filter((e) => e.scope.kind === 'tag' && device.tags[e.scope.tag] === e.scope.value)
    .sort((a, b) => scopeName(a.scope).localeCompare(scopeName(b.scope)));
  const fleet = entries.filter((e) => e.scope.kind === 'fleet');
  const windows = (field: 'maintenanceWindows' | 'downloadWindows'): [string[], string | null] => {
    for (const level of [own, tags, fleet]) {
      const setting = level.filter((e) => e[field] !== null);
      if (setting.length > 0)
        return [
          [...new Set(setting.flatMap((e) => e[field] ?? []))],
          setting.map((e) => scopeName(e.scope)).join(', '),
        ];
    }
    return [[], null];
  };
  const rate = (): [number, string | null] => {
    for (const level of [own, tags, fleet]) {
      const setting = level.filter((e) => e.downloadRate !== null);
      if (setting.length === 0) continue;
      const caps = setting.filter((e) => (e.downloadRate ?? 0) > 0);
      if (caps.length === 0) return [0, setting.map((e) => scopeName(e.scope)).join(', ')];
      const lowest = caps.reduce((a, b) => ((a.downloadRate ?? 0) <= (b.downloadRate ?? 0) ? a : b));
      return [lowest.downloadRate ?? 0, scopeName(lowest.scope)];
    }
    return [0, null];
  };
  const [maintenanceWindows, maintenanceSource] = windows('maintenanceWindows');
  const [downloadWindows, downloadSource] = windows('downloadWindows');
  const [downloadRate, rateSource] = rate();
  return {
    maintenanceWindows,
    downloadWindows,
    downloadRate,
    sources: {
      maintenanceWindows: maintenanceSource,
      downloadWindows: downloadSource,
      downloadRate: rateSource,
    },
  };
}

/** Whether instant `ms` is inside one of `windows` (an empty list: always). */
export function insideAnyWindow(windows: string[], ms: number): boolean {
  if (windows.length === 0) return true;
  return windows.some((w) => insideWindow(parseMaintenanceWindow(w), ms));
}

/** The first instant at or after `ms` inside one of `windows` (`ms` itself for an empty list). */
export function nextOpening(windows: string[], ms: number): number {
  if (windows.length === 0) return ms;
  return Math.min(...windows.map((w) => nextWindowOpening(parseMaintenanceWindow(w), ms)));
}

/** What is wrong with a target's `updatePolicy` (the agent's check, without zod), or null. */
export function updatePolicyProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const policy = value as Record<string, unknown>;
  for (const field of ['maintenanceWindows', 'downloadWindows'] as const) {
    const windows = policy[field];
    if (!Array.isArray(windows) || windows.length > 16) return `${field} is not a list of at most 16 windows`;
    for (const w of windows as unknown[]) {
      if (typeof w !== 'string') return `${field} holds something that is not a window`;
      try {
        parseMaintenanceWindow(w);
      } catch (error) {
        return `${field}: ${(error as Error).message}`;
      }
    }
  }
  const rate = policy.downloadRate;
  if (typeof rate !== 'number' || !Number.isSafeInteger(rate) || rate < 0)
    return 'downloadRate is not a number of bytes per second';
  return null;
}

/** Whether a device's `deferred` reason says it waits for a maintenance or download window. */
export function isWindowWait(reason: string | null | undefined): boolean {
  return !!reason && (reason.startsWith(MAINTENANCE_WAIT) || reason.startsWith(DOWNLOAD_WAIT));
}

const MINUTE_MS = 60_000;

/** The first whole minute after `ms` outside all of `windows` (`ms` is inside one). */
function windowEnd(windows: string[], ms: number): number {
  let t = Math.floor(ms / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  while (insideAnyWindow(windows, t) && t < ms + 8 * 24 * 3600_000) t += MINUTE_MS;
  return t;
}

/**
 * When a device told at `nowMs` would be done under `policy`: its download starts when a download
 * window opens, runs `bytes` at the rate cap (paused while the windows are shut, resumed when one
 * opens), and its install starts when a maintenance window opens. Null when the policy limits nothing
 * (the device is as fast as its link); with windows but no cap the download itself counts as instant.
 */
export function projectDoneBy(policy: UpdatePolicy, bytes: number, nowMs: number): number | null {
  const { maintenanceWindows, downloadWindows, downloadRate } = policy;
  if (downloadRate <= 0 && downloadWindows.length === 0 && maintenanceWindows.length === 0) return null;
  let left = downloadRate > 0 ? (bytes / downloadRate) * 1000 : 0;
  let t = nextOpening(downloadWindows, nowMs);
  if (downloadWindows.length === 0) t += left;
  else
    for (let pieces = 0; left > 0 && pieces < 1000; pieces += 1) {
      const run = Math.min(left, windowEnd(downloadWindows, t) - t);
      left -= run;
      t += run;
      if (left > 0) t = nextOpening(downloadWindows, t);
    }
  return nextOpening(maintenanceWindows, Math.ceil(t));
}

/** A rate cap for people, decimal as links are sold: `no cap`, `800 B/s`, `50 kB/s`, `1.25 MB/s`. */
export function downloadRateText(bytesPerSecond: number): string {
  if (bytesPerSecond === 0) return 'no cap';
  if (bytesPerSecond < 1000) return `${bytesPerSecond} B/s`;
  if (bytesPerSecond < 1000 ** 2) return `${+(bytesPerSecond / 1000).toFixed(1)} kB/s`;
  return `${+(bytesPerSecond / 1000 ** 2).toFixed(2)} MB/s`;
}
