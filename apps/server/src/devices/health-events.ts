import type { AppMetrics, HealthKind, ServiceState } from '@ferry/protocol';

/** What the server last stored for a device: what a new report's counters are compared with. */
export interface HealthBaseline {
  services: ServiceState[] | null;
  metrics: AppMetrics | null;
  error: string | null;
  online: boolean;
}

/** The parts of a state report that can count against a device's health. */
export interface HealthReport {
  status: string;
  error: string | null;
  services?: ServiceState[];
  metrics?: AppMetrics;
}

export type HealthEventCounts = Partial<Record<HealthKind, number>>;

/** Restarts since the baseline: a container seen before counts its increase, a new one all of its own. */
function restarts(before: ServiceState[], after: ServiceState[]): number {
  let n = 0;
  for (const s of after) {
    const prev = before.find((b) => b.name === s.name);
    const sameContainer = prev && (!prev.containerId || !s.containerId || prev.containerId === s.containerId);
    n += prev && sameContainer ? Math.max(0, s.restartCount - prev.restartCount) : s.restartCount;
  }
  return n;
}

/**
 * What a state report adds to a device's health counts (docs/rollouts.md): the engine's restart
 * counts grow (per container, so a container recreated by an update starts from 0), a service turns
 * unhealthy, a new error is reported (a deferral is not an error), an app metric counter grows (a
 * counter lower than before was reset: all of it is new). The first report that carries services or
 * metrics only sets the baseline. Pure.
 */
export function reportHealthEvents(baseline: HealthBaseline | null, report: HealthReport): HealthEventCounts {
  const counts: HealthEventCounts = {};
  const add = (kind: HealthKind, n: number): void => {
    if (n > 0) counts[kind] = (counts[kind] ?? 0) + n;
  };
  if (report.services && baseline?.services) {
    add('restarts', restarts(baseline.services, report.services));
    add(
      'healthChecks',
      report.services.filter(
        (s) =>
          s.health === 'unhealthy' &&
          baseline.services?.find((b) => b.name === s.name)?.health !== 'unhealthy',
      ).length,
    );
  }
  if (report.error && report.status !== 'deferred' && report.error !== baseline?.error) add('errors', 1);
  if (report.metrics && baseline?.metrics) {
    for (const [name, value] of Object.entries<number>(report.metrics)) {
      const before = baseline.metrics[name];
      if (before === undefined) continue;
      add(`metric:${name}`, value >= before ? value - before : value);
    }
  }
  return counts;
}

/** A device going from online to offline is one offline transition. */
export function presenceHealthEvents(baseline: HealthBaseline | null, online: boolean): HealthEventCounts {
  return baseline?.online && !online ? { offline: 1 } : {};
}
