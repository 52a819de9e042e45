import { Device, RolloutPlan, RolloutView } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { createFleet, pushRelease } from './support/mqtt-devices';
import {
  ServerPlace,
  json,
  newPlace,
  simulatedDevicesOn,
  startServerAt,
  waitForRollout,
} from './support/simulator-harness';
import { DATABASE_KINDS, TestServer } from './support/test-server';

type Server = TestServer & { remove: () => Promise<void> };

describe.each(DATABASE_KINDS)('scheduled rollouts and exponential ramps (%s)', (kind) => {
  let place: ServerPlace;
  let server: Server;
  const simulators: Simulator[] = [];

  beforeAll(async () => {
    place = await newPlace({}, kind);
    server = await startServerAt(place);
  });
  afterAll(async () => {
    await Promise.all(simulators.map((s) => s.stop()));
    await server.close();
    await server.remove();
  });

  it('plans ramp batches, waits as scheduled until its start time, then updates every device', async () => {
    const fleet = await createFleet(server, 'Scheduled');
    const v1 = await pushRelease(server, fleet, 'Scheduled v1');
    await simulatedDevicesOn(server, fleet, v1, 7, 'sim', {}, simulators);
    const v2 = await pushRelease(server, fleet, 'Scheduled v2');
    const ramp = { base: 1, factor: 2 };
    const startAt = new Date(Date.now() + 4000).toISOString();
    const strategy = { ramp, startAt, bakeSeconds: 0.2, deviceTimeoutSeconds: 30 };

    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy },
      }),
      201,
    );
    // 1, 2, 4 devices: 7 in all.
    expect(created.plan.batches.map((b) => b.size)).toEqual([1, 2, 4]);
    expect(created.state).toBe('scheduled');
    expect(created.reason).toBe(`scheduled to start at ${startAt}`);
    expect(created.strategy).toMatchObject({ ramp, startAt });
    // A scheduled rollout is the fleet's active one.
    const second = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
      method: 'POST',
      json: { releaseId: v2.id },
    });
    expect(second.status).toBe(409);
    expect(await second.text()).toMatch(/is scheduled: abort it first/);
    const listed = await json<RolloutView[]>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts?state=scheduled`),
    );
    expect(listed.map((r) => r.id)).toEqual([created.id]);
    expect((await server.api(`/v1/rollouts/${created.id}/pause`, { method: 'POST' })).status).toBe(409);

    // Until the start time no device is told anything.
    const before = await json<RolloutView>(await server.api(`/v1/rollouts/${created.id}`));
    if (Date.now() < Date.parse(startAt) - 500) {
      expect(before.state).toBe('scheduled');
      expect(before.counts).toEqual({ pending: 7 });
    }
    const done = await waitForRollout(
      server,
      created.id,
      (r) => r.state === 'completed',
      60_000,
      'completed',
    );
    expect(done.counts).toEqual({ succeeded: 7 });
    expect(done.batches.map((b) => [b.size, b.state])).toEqual([
      [1, 'passed'],
      [2, 'passed'],
      [4, 'passed'],
    ]);
    // The first batch started at the scheduled time, not at creation.
    expect(Date.parse(done.batches[0]!.startedAt!)).toBeGreaterThanOrEqual(Date.parse(startAt));
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    expect(devices.every((d) => d.releaseId === v2.id)).toBe(true);
  });

  it('starts a scheduled rollout early on resume, and aborts one without telling any device', async () => {
    const fleet = await createFleet(server, 'Early');
    const v1 = await pushRelease(server, fleet, 'Early v1');
    await simulatedDevicesOn(server, fleet, v1, 2, 'sim', {}, simulators);
    const v2 = await pushRelease(server, fleet, 'Early v2');
    const startAt = new Date(Date.now() + 3600_000).toISOString();
    const post = async () =>
      json<RolloutView>(
        await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
          method: 'POST',
          json: { releaseId: v2.id, strategy: { startAt, bakeSeconds: 0.2, deviceTimeoutSeconds: 30 } },
        }),
        201,
      );
    const dropped = await post();
    expect(dropped.state).toBe('scheduled');
    const aborted = await json<RolloutView>(
      await server.api(`/v1/rollouts/${dropped.id}/abort`, { method: 'POST' }),
      200,
    );
    expect(aborted.state).toBe('aborted');
    expect(aborted.counts).toEqual({ canceled: 2 });
    const early = await post();
    expect(early.state).toBe('scheduled');
    await json(await server.api(`/v1/rollouts/${early.id}/resume`, { method: 'POST' }), 200);
    const done = await waitForRollout(server, early.id, (r) => r.state === 'completed', 60_000, 'completed');
    expect(done.counts).toEqual({ succeeded: 2 });
  });

  it('refuses hostile ramps and start times with 400 and a fixed start in a fleet default', async () => {
    const fleet = await createFleet(server, 'Hostile schedule');
    const v1 = await pushRelease(server, fleet, 'Hostile v1');
    const cases: [unknown, RegExp][] = [
      [{ ramp: { base: 1, factor: 100 } }, /factor/],
      [{ ramp: { base: 0, factor: 2 } }, /base/],
      [{ ramp: { base: 8, factor: 2, max: 4 } }, /ramp.max must be at least ramp.base/],
      [{ ramp: 'fast' }, /ramp/],
      [{ startAt: 'tomorrow' }, /startAt/],
      [{ startAt: '2026-06-01T02:00:00' }, /startAt/],
      [{ startAt: new Date(Date.now() + 400 * 86400_000).toISOString() }, /more than a year ahead/],
    ];
    for (const [strategy, message] of cases) {
      const response = await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v1.id, strategy },
      });
      expect([JSON.stringify(strategy), response.status]).toEqual([JSON.stringify(strategy), 400]);
      expect(await response.text()).toMatch(message);
    }
    const settings = await server.api(`/v1/fleets/${fleet.slug}`, {
      method: 'PATCH',
      json: { trackLatest: true, defaultStrategy: { startAt: new Date(Date.now() + 60_000).toISOString() } },
    });
    expect(settings.status).toBe(400);
    expect(await settings.text()).toMatch(/cannot start at a fixed time/);
    expect(await json<RolloutView[]>(await server.api(`/v1/fleets/${fleet.slug}/rollouts`))).toEqual([]);
  });
});
