import {
  DeviceTarget,
  EffectiveUpdatePolicy,
  RolloutPlan,
  RolloutView,
  TargetRefusedError,
  UpdatePolicyEntry,
  verifySignedTarget,
} from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { createFleet, pushRelease, registerDevice } from './support/mqtt-devices';
import {
  ServerPlace,
  json,
  layersOf,
  newPlace,
  startServerAt,
  until,
  waitForRollout,
} from './support/simulator-harness';
import { DATABASE_KINDS, TestServer } from './support/test-server';
import { windowAhead } from './support/window-ahead';

type Server = TestServer & { remove: () => Promise<void> };
type FleetPolicies = { fleetId: string; entries: UpdatePolicyEntry[] };

describe.each(DATABASE_KINDS)('update policies: maintenance windows and metered links (%s)', (kind) => {
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

  const put = (fleet: string, body: unknown): Promise<Response> =>
    server.api(`/v1/fleets/${fleet}/update-policy`, { method: 'PUT', json: body });

  it('sets, lists, resolves and clears the policy of a fleet, a tag value and a device', async () => {
    const fleet = await createFleet(server, 'Policies');
    const device = await registerDevice(server, fleet);
    await json(
      await server.api(`/v1/devices/${device.uuid}/tags`, {
        method: 'POST',
        json: { tags: { link: 'lte' } },
      }),
      201,
    );
    await json(await put(fleet.slug, { maintenanceWindows: ['Mon-Fri 02:00-04:00 Europe/Berlin'] }), 200);
    await json(await put(fleet.slug, { tag: 'link=lte', downloadRate: 50_000, downloadWindows: [] }), 200);
    const listed = await json<FleetPolicies>(await server.api(`/v1/fleets/${fleet.slug}/update-policy`), 200);
    expect(
      listed.entries.map((e) => [e.scope, e.maintenanceWindows, e.downloadWindows, e.downloadRate]),
    ).toEqual([
      [{ kind: 'fleet' }, ['Mon-Fri 02:00-04:00 Europe/Berlin'], null, null],
      [{ kind: 'tag', tag: 'link', value: 'lte' }, null, [], 50_000],
    ]);
    expect(
      await json<EffectiveUpdatePolicy>(await server.api(`/v1/devices/${device.uuid}/update-policy`), 200),
    ).toMatchObject({
      maintenanceWindows: ['Mon-Fri 02:00-04:00 Europe/Berlin'],
      downloadWindows: [],
      downloadRate: 50_000,
      sources: { maintenanceWindows: 'fleet', downloadWindows: 'tag link=lte', downloadRate: 'tag link=lte' },
    });
    // The device's own entry lifts the cap for it alone.
    await json(await put(fleet.slug, { device: device.uuid, downloadRate: 0 }), 200);
    expect(
      await json<EffectiveUpdatePolicy>(await server.api(`/v1/devices/${device.uuid}/update-policy`), 200),
    ).toMatchObject({ downloadRate: 0, sources: { downloadRate: 'device' } });
    // Clearing: by level; a level that sets nothing is a 404.
    expect(
      (await server.api(`/v1/fleets/${fleet.slug}/update-policy?tag=link%3Dlte`, { method: 'DELETE' }))
        .status,
    ).toBe(204);
    expect(
      (await server.api(`/v1/fleets/${fleet.slug}/update-policy?tag=link%3Dlte`, { method: 'DELETE' }))
        .status,
    ).toBe(404);
    // A deprovisioned device's entry goes with it.
    expect((await server.api(`/v1/devices/${device.uuid}`, { method: 'DELETE' })).status).toBe(204);
    await until(
      async () => {
        const { entries } = await json<FleetPolicies>(
          await server.api(`/v1/fleets/${fleet.slug}/update-policy`),
        );
        return entries.length === 1 && entries[0]!.scope.kind === 'fleet' ? true : undefined;
      },
      5000,
      'the device entry removed',
    );
  });

  it('refuses hostile input with a clear error and keeps what was set', async () => {
    const fleet = await createFleet(server, 'Hostile policies');
    const other = await createFleet(server, 'Other policies');
    const stranger = await registerDevice(server, other);
    await json(await put(fleet.slug, { downloadRate: 1000 }), 200);
    const cases: [unknown, number, RegExp][] = [
      [{ maintenanceWindows: ['every night'] }, 400, /DAYS HH:MM-HH:MM ZONE/],
      [{ maintenanceWindows: ['daily 02:00-04:00 Mars/Olympus'] }, 400, /IANA time zone/],
      [{ maintenanceWindows: ['daily 02:00-02:00 UTC'] }, 400, /empty window/],
      [{ downloadWindows: Array(17).fill('daily 02:00-04:00 UTC') }, 400, /16/],
      [{ downloadRate: -1 }, 400, /downloadRate/],
      [{ downloadRate: 1e12 }, 400, /downloadRate/],
      [{ downloadRate: '1000' }, 400, /downloadRate/],
      [{ tag: 'link=lte', device: stranger.uuid, downloadRate: 1 }, 400, /not both/],
      [{ tag: '=x', downloadRate: 1 }, 400, /name=value/],
      [{ device: stranger.uuid, downloadRate: 1 }, 400, /another fleet/],
      [{ device: 'f'.repeat(32), downloadRate: 1 }, 404, /no device/],
      [{ rate: 5 }, 400, /rate/],
      [[1, 2], 400, /object|array/i],
      [{ maintenanceWindows: [`daily 02:00-04:00 ${'A'.repeat(5000)}`] }, 400, /100 characters/],
    ];
    for (const [body, status, message] of cases) {
      const response = await put(fleet.slug, body);
      expect({ body, status: response.status, text: await response.text() }).toEqual({
        body,
        status,
        text: expect.stringMatching(message) as string,
      });
    }
    for (const query of ['tag=nope', 'device=xyz', 'other=1', 'tag=a%3Db&device=' + 'f'.repeat(32)]) {
      const response = await server.api(`/v1/fleets/${fleet.slug}/update-policy?${query}`, {
        method: 'DELETE',
      });
      expect({ query, status: response.status }).toEqual({ query, status: 400 });
    }
    const { entries } = await json<FleetPolicies>(await server.api(`/v1/fleets/${fleet.slug}/update-policy`));
    expect(entries.map((e) => [e.scope.kind, e.downloadRate])).toEqual([['fleet', 1000]]);
  });

  it("signs the device's effective policy into its target, and leaves it out when nothing applies", async () => {
    const fleet = await createFleet(server, 'Signed policies');
    const device = await registerDevice(server, fleet);
    const target = async (): Promise<DeviceTarget> =>
      json<DeviceTarget>(await server.api('/v1/device/target', { token: device.apiKey }), 200);
    expect((await target()).updatePolicy).toBeUndefined();
    await json(
      await put(fleet.slug, { maintenanceWindows: ['Sat 22:00-02:00 UTC'], downloadRate: 25_000 }),
      200,
    );
    const signed = await target();
    expect(signed.updatePolicy).toEqual({
      maintenanceWindows: ['Sat 22:00-02:00 UTC'],
      downloadWindows: [],
      downloadRate: 25_000,
    });
    expect(verifySignedTarget(signed, signed.onlineKey, device.uuid, Date.now()).updatePolicy).toEqual(
      signed.updatePolicy,
    );
    // A party between server and device that lifts the cap breaks the signature.
    const lifted = { ...signed, updatePolicy: { ...signed.updatePolicy!, downloadRate: 0 } };
    expect(() => verifySignedTarget(lifted, signed.onlineKey, device.uuid, Date.now())).toThrow(
      TargetRefusedError,
    );
  });

  it('simulated devices download at once, wait for their maintenance window without timing out, and install when it opens', async () => {
    const fleet = await createFleet(server, 'Windows');
    const v1 = await pushRelease(server, fleet, 'Windows v1');
    const window = windowAhead(3);
    // The devices' clock, moved by the test: the server keeps the machine's.
    let offset = 0;
    const simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: 4,
      namePrefix: 'win',
      stepMs: 30,
      running: { id: v1.id, layers: layersOf(v1) },
      now: () => Date.now() + offset,
      windowRecheckMs: 200,
    });
    simulators.push(simulator);
    await json(await put(fleet.slug, { maintenanceWindows: [window.text] }), 200);
    const v2 = await pushRelease(server, fleet, 'Windows v2');
    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy: { batches: ['100%'], bakeSeconds: 0, deviceTimeoutSeconds: 2 } },
      }),
      201,
    );
    // The plan says they are done once the window opens.
    expect(Date.parse(created.plan.batches[0]!.doneBy!)).toBe(window.opensAt);
    const waiting = await waitForRollout(server, created.id, (r) => r.waitingForWindow === 4, 20_000);
    expect(waiting.state).toBe('running');
    // Well past the 2 s device timeout: still waiting, none timed out.
    await new Promise((r) => setTimeout(r, 3000));
    const still = await json<RolloutView>(await server.api(`/v1/rollouts/${created.id}`));
    expect({
      state: still.state,
      waiting: still.waitingForWindow,
      timedOut: still.counts.timed_out ?? 0,
    }).toEqual({
      state: 'running',
      waiting: 4,
      timedOut: 0,
    });
    expect(simulator.devices.every((d) => d.stats.downloads.length > 0)).toBe(true);
    // The devices' clock reaches the window: they install, and the rollout completes.
    offset = window.opensAt + 60_000 - Date.now();
    const done = await waitForRollout(server, created.id, (r) => r.state === 'completed', 30_000);
    expect(done.counts.succeeded).toBe(4);
  }, 90_000);

  it('simulated devices on a capped link take at least bytes ÷ cap to download', async () => {
    const fleet = await createFleet(server, 'Metered');
    const v1 = await pushRelease(server, fleet, 'Metered v1');
    const simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: 2,
      namePrefix: 'metered',
      stepMs: 30,
      running: { id: v1.id, layers: layersOf(v1) },
    });
    simulators.push(simulator);
    const v2 = await pushRelease(server, fleet, 'Metered v2 with some more bytes '.repeat(20));
    const bytes = v2.services[0]!.layers[0]!.gzipSize;
    const rate = Math.ceil(bytes / 3); // about 3 s per device
    await json(await put(fleet.slug, { downloadRate: rate }), 200);
    const started = Date.now();
    const created = await json<RolloutView & { plan: RolloutPlan }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: { releaseId: v2.id, strategy: { batches: ['100%'], bakeSeconds: 0, deviceTimeoutSeconds: 60 } },
      }),
      201,
    );
    expect(Date.parse(created.plan.batches[0]!.doneBy!) - started).toBeGreaterThanOrEqual(2900);
    const done = await waitForRollout(server, created.id, (r) => r.state === 'completed', 30_000);
    expect(done.counts.succeeded).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual((bytes / rate) * 1000);
  }, 60_000);
});
