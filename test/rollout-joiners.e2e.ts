import { Device, RolloutDeviceView, RolloutPlan, RolloutView } from '@ferry/protocol';
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

describe.each(DATABASE_KINDS)('late joiners and deprovisioned devices in a running rollout (%s)', (kind) => {
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

  it('updates devices registered or newly tagged after the start in its next batch, and drops a deprovisioned one from its counts', async () => {
    const fleet = await createFleet(server, 'Joiners');
    const v1 = await pushRelease(server, fleet, 'Joiners v1');
    // Four devices in the beta ring, one outside it.
    const first = await simulatedDevicesOn(server, fleet, v1, 4, 'first', { ring: 'beta' }, simulators);
    const outside = await simulatedDevicesOn(server, fleet, v1, 1, 'outside', { ring: 'stable' }, simulators);
    const v2 = await pushRelease(server, fleet, 'Joiners v2');

    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: {
          releaseId: v2.id,
          tagFilter: { name: 'ring', value: 'beta' },
          strategy: {
            batches: [1, '100%'],
            bakeSeconds: 0.3,
            deviceTimeoutSeconds: 30,
            maxFailurePercent: 0,
          },
        },
      }),
      201,
    );
    expect(created.total).toBe(4);
    // Held between batch 1 and batch 2 while the fleet changes: the changes land while it is paused.
    await json(await server.api(`/v1/rollouts/${created.id}/pause`, { method: 'POST' }), 200);
    const batch2 = created.plan.devices.filter((d) => d.batch === 2).map((d) => d.uuid);
    const gone = batch2[0]!;
    expect((await server.api(`/v1/devices/${gone}`, { method: 'DELETE' })).status).toBe(204);
    const late = await simulatedDevicesOn(server, fleet, v1, 2, 'late', { ring: 'beta' }, simulators);
    const retagged = outside.devices[0]!.uuid;
    await json(
      await server.api(`/v1/devices/${retagged}/tags`, { method: 'POST', json: { tags: { ring: 'beta' } } }),
      201,
    );
    const joiners = [...late.devices.map((d) => d.uuid), retagged].sort();

    const held = await waitForRollout(
      server,
      created.id,
      (r) => r.total === 6 && r.deprovisioned === 1,
      20_000,
      'joiners listed and the deprovisioned device left out while paused',
    );
    expect(held.state).toBe('paused');
    const listed = await json<RolloutDeviceView[]>(await server.api(`/v1/rollouts/${created.id}/devices`));
    expect(
      listed
        .filter((d) => joiners.includes(d.uuid))
        .map((d) => [d.uuid, d.batch, d.state])
        .sort(),
    ).toEqual(joiners.map((uuid) => [uuid, 2, 'pending']));
    expect(listed.find((d) => d.uuid === gone)).toMatchObject({
      state: 'canceled',
      reason: 'device deprovisioned',
    });

    await json(await server.api(`/v1/rollouts/${created.id}/resume`, { method: 'POST' }), 200);
    const done = await waitForRollout(
      server,
      created.id,
      (r) => r.state === 'completed',
      60_000,
      'completed',
    );
    expect(done.counts).toEqual({ succeeded: 6 });
    expect(done.batches.map((b) => [b.number, b.size, b.state])).toEqual([
      [1, 1, 'passed'],
      [2, 5, 'passed'],
    ]);
    expect(done.failures).toEqual([]);
    const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
    expect(
      devices
        .filter((d) => d.releaseId === v2.id)
        .map((d) => d.uuid)
        .sort(),
    ).toEqual([...first.devices.map((d) => d.uuid).filter((u) => u !== gone), ...joiners].sort());
    expect(devices.find((d) => d.uuid === gone)).toBeUndefined();
  });
});
