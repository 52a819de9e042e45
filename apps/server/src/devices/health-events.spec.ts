import type { ServiceState } from '@ferry/protocol';
import { HealthBaseline, presenceHealthEvents, reportHealthEvents } from './health-events';

const service = (name: string, restartCount: number, extra: Partial<ServiceState> = {}): ServiceState => ({
  name,
  state: 'running',
  image: 'sha256:aa',
  restartCount,
  containerId: `${name}-c1`,
  ...extra,
});
const baseline = (extra: Partial<HealthBaseline> = {}): HealthBaseline => ({
  services: [service('web', 2), service('worker', 0)],
  metrics: null,
  error: null,
  online: true,
  ...extra,
});

describe('reportHealthEvents', () => {
  it('counts the growth of each container’s restart count', () => {
    expect(
      reportHealthEvents(baseline(), {
        status: 'running',
        error: null,
        services: [service('web', 5), service('worker', 1)],
      }),
    ).toEqual({ restarts: 4 });
  });

  it('counts a recreated container from 0 and never counts a lower count as negative', () => {
    const recreated = service('web', 1, { containerId: 'web-c2' });
    expect(
      reportHealthEvents(baseline(), {
        status: 'running',
        error: null,
        services: [recreated, service('worker', 0)],
      }),
    ).toEqual({
      restarts: 1,
    });
    expect(
      reportHealthEvents(baseline(), { status: 'running', error: null, services: [service('web', 1)] }),
    ).toEqual({});
  });

  it('only sets the baseline with the first services a device reports', () => {
    expect(
      reportHealthEvents(baseline({ services: null }), {
        status: 'running',
        error: null,
        services: [service('web', 40)],
      }),
    ).toEqual({});
    expect(
      reportHealthEvents(null, { status: 'running', error: null, services: [service('web', 40)] }),
    ).toEqual({});
  });

  it('counts a service turning unhealthy once, not while it stays unhealthy', () => {
    const unhealthy = service('web', 2, { health: 'unhealthy' });
    expect(reportHealthEvents(baseline(), { status: 'running', error: null, services: [unhealthy] })).toEqual(
      { healthChecks: 1 },
    );
    expect(
      reportHealthEvents(baseline({ services: [unhealthy] }), {
        status: 'running',
        error: null,
        services: [unhealthy],
      }),
    ).toEqual({});
  });

  it('counts a new error, not the same one repeated, and not a deferral', () => {
    expect(reportHealthEvents(baseline(), { status: 'failed', error: 'exit 1' })).toEqual({ errors: 1 });
    expect(reportHealthEvents(baseline({ error: 'exit 1' }), { status: 'failed', error: 'exit 1' })).toEqual(
      {},
    );
    expect(reportHealthEvents(baseline(), { status: 'deferred', error: 'battery low' })).toEqual({});
  });

  it('counts app metric increases, a reset counter in full, and a new metric as its baseline', () => {
    const before = baseline({ metrics: { brownouts: 3, resets: 10 } });
    expect(
      reportHealthEvents(before, {
        status: 'running',
        error: null,
        metrics: { brownouts: 5, resets: 2, fresh: 9 },
      }),
    ).toEqual({
      'metric:brownouts': 2,
      'metric:resets': 2,
    });
    expect(
      reportHealthEvents(baseline(), { status: 'running', error: null, metrics: { brownouts: 5 } }),
    ).toEqual({});
  });
});

describe('presenceHealthEvents', () => {
  it('counts going from online to offline, nothing else', () => {
    expect(presenceHealthEvents(baseline(), false)).toEqual({ offline: 1 });
    expect(presenceHealthEvents(baseline({ online: false }), false)).toEqual({});
    expect(presenceHealthEvents(baseline(), true)).toEqual({});
    expect(presenceHealthEvents(null, false)).toEqual({});
  });
});
