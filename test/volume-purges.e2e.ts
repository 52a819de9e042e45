import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { AuditEntry, CreatedApiKey, DeviceTarget, Release, VolumePurge } from '@ferry/protocol';
import { deviceTopic } from '@ferry/protocol';
import { dockerArchive, gnuTarLayer, tarOf } from './support/hostile-archives';
import {
  TestDevice,
  TestFleet,
  connectDevice,
  createFleet,
  eventually,
  getDevice,
  nextMessage,
  registerDevice,
  setTarget,
} from './support/mqtt-devices';
import { DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

/**
 * `POST /v1/devices/{uuid}/volumes/{volume}/purge` and its way to the device: refusals of hostile names,
 * unknown devices, other fleets' keys and volumes a release of the device declares; the pending purge in
 * the device's target answer, the notice that wakes it, its answer, and the audit entry. The agent's
 * side on a real engine is in test/compose.e2e.ts.
 */
describe.each(DATABASE_KINDS)('volume purges on %s', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let other: TestFleet;
  let device: TestDevice;
  let stranger: TestDevice;
  let withData: Release;
  let withCache: Release;
  let mqtt: MqttClient;

  /** A compose release of one service mounting the named volume `volume`. */
  const pushCompose = async (volume: string, content: string): Promise<Release> => {
    const work = mkdtempSync(join(tmpdir(), 'ferry-purge-'));
    try {
      const archive = await dockerArchive([gnuTarLayer(work, { 'app/v': content })], { repoTag: 'app:1' });
      const compose = `services:\n  app:\n    image: app:1\n    volumes: ["${volume}:/data"]\nvolumes:\n  ${volume}:\n`;
      const bundle = await tarOf([
        { name: 'docker-compose.yml', body: compose },
        { name: 'app.tar', body: archive },
      ]);
      const response = await server.api(`/v1/fleets/${fleet.slug}/releases`, {
        method: 'POST',
        body: bundle,
        headers: { 'content-type': 'application/vnd.ferry.release+tar' },
      });
      if (response.status !== 201) throw new Error(`push: ${response.status} ${await response.text()}`);
      return (await response.json()) as Release;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  };
  const purge = (uuid: string, volume: string, init: { token?: string; json?: unknown } = {}) =>
    server.api(`/v1/devices/${uuid}/volumes/${volume}/purge`, { method: 'POST', ...init });
  const purges = async (uuid: string): Promise<VolumePurge[]> =>
    (await (await server.api(`/v1/devices/${uuid}/volume-purges`)).json()) as VolumePurge[];
  const target = async (who: TestDevice): Promise<DeviceTarget> =>
    (await (await server.api('/v1/device/target', { token: who.apiKey })).json()) as DeviceTarget;
  const answer = (who: TestDevice, volume: string, json: unknown) =>
    server.api(`/v1/device/volume-purges/${volume}`, { method: 'POST', token: who.apiKey, json });
  const createKey = async (body: object): Promise<CreatedApiKey> =>
    (await (await server.api('/v1/api-keys', { method: 'POST', json: body })).json()) as CreatedApiKey;

  beforeAll(async () => {
    server = await startTestServer(kind);
    fleet = await createFleet(server, 'Volumes');
    other = await createFleet(server, 'Elsewhere');
    device = await registerDevice(server, fleet);
    stranger = await registerDevice(server, other);
    withData = await pushCompose('data', '1');
    withCache = await pushCompose('cache', '2');
    expect(await setTarget(server, device.uuid, withData.id)).toBe(200);
    mqtt = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, device);
    await mqtt.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
  }, 120_000);
  afterAll(async () => {
    await mqtt?.endAsync();
    await server?.close();
  });

  it('refuses hostile volume names, bodies and unknown devices with a 4xx, storing nothing', async () => {
    for (const name of ['.hidden', '-x', 'a%2Fb', 'a%20b', '%00', 'x'.repeat(64), 'caf%C3%A9']) {
      const response = await purge(device.uuid, name);
      expect([name, response.status]).toEqual([name, 400]);
      expect(((await response.json()) as { message: string }).message).toMatch(/volume/);
    }
    expect((await purge(device.uuid, 'old', { json: { force: true } })).status).toBe(400);
    const unknown = await purge('00000000-0000-4000-8000-000000000000', 'old');
    expect(unknown.status).toBe(404);
    expect((await server.api('/v1/devices/nope/volume-purges')).status).toBe(404);
    expect(await purges(device.uuid)).toEqual([]);
  });

  it('refuses to purge a volume the release the device is to run declares, naming the release', async () => {
    const response = await purge(device.uuid, 'data');
    expect(response.status).toBe(409);
    expect(((await response.json()) as { message: string }).message).toBe(
      `volume "data" is declared by release v${withData.version} (${withData.id}), which device ${device.uuid} is to run: purge it once no release it runs declares it`,
    );
    expect(await purges(device.uuid)).toEqual([]);
  });

  it('refuses to purge a volume the release the device runs declares, naming the release', async () => {
    const runner = await registerDevice(server, fleet);
    const client = await connectDevice(`mqtt://127.0.0.1:${server.mqttPort}`, runner);
    try {
      await client.publishAsync(
        deviceTopic(runner.uuid, 'state'),
        JSON.stringify({ status: 'running', releaseId: withData.id }),
        { qos: 1 },
      );
      await eventually(
        async () => ((await getDevice(server, runner.uuid)).releaseId === withData.id ? true : undefined),
        15_000,
        'running release stored',
      );
    } finally {
      await client.endAsync();
    }
    // Its target no longer declares the volume: the release it still runs does.
    expect(await setTarget(server, runner.uuid, withCache.id)).toBe(200);
    const response = await purge(runner.uuid, 'data');
    expect(response.status).toBe(409);
    expect(((await response.json()) as { message: string }).message).toContain(
      `release v${withData.version} (${withData.id}), which device ${runner.uuid} runs:`,
    );
    expect(await purges(runner.uuid)).toEqual([]);
  });

  it('holds deployers to their fleet and viewers to reading', async () => {
    const outsider = await createKey({ name: 'outsider', role: 'deployer', fleets: [other.slug] });
    const viewer = await createKey({ name: 'looker', role: 'viewer', fleets: [fleet.slug] });
    expect((await purge(device.uuid, 'old', { token: outsider.key })).status).toBe(403);
    expect((await purge(device.uuid, 'old', { token: viewer.key })).status).toBe(403);
    const listed = await server.api(`/v1/devices/${device.uuid}/volume-purges`, { token: viewer.key });
    expect(listed.status).toBe(200);
    expect(await purges(device.uuid)).toEqual([]);
  });

  it('stores a purge, wakes the device, carries it in the target until the device answers, and audits it', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const notice = nextMessage(mqtt, deviceTopic(device.uuid, 'target'), 15_000);
    const response = await purge(device.uuid, 'old');
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({
      uuid: device.uuid,
      volume: 'old',
      state: 'pending',
      requestedAt: expect.any(String),
      requestedBy: 'bootstrap',
      doneAt: null,
      error: null,
    });
    expect(JSON.parse((await notice).toString()) as { releaseId: string }).toMatchObject({
      releaseId: withData.id,
    });
    expect((await target(device)).volumePurges).toEqual(['old']);
    // Another device's target does not carry it, and it cannot answer for it.
    expect((await target(stranger)).volumePurges).toBeUndefined();
    expect((await answer(stranger, 'old', { outcome: 'purged' })).status).toBe(404);
    for (const body of [{ outcome: 'gone' }, { outcome: 'purged', extra: 1 }, { error: 'x' }, 'purged'])
      expect((await answer(device, 'old', body)).status).toBe(400);
    expect((await answer(device, 'a%2Fb', { outcome: 'purged' })).status).toBe(400);
    expect((await purges(device.uuid))[0]?.state).toBe('pending');

    expect((await answer(device, 'old', { outcome: 'purged' })).status).toBe(204);
    const [done] = await purges(device.uuid);
    expect(done).toMatchObject({ volume: 'old', state: 'purged', doneAt: expect.any(String), error: null });
    expect((await target(device)).volumePurges).toBeUndefined();
    // Answered once: a replayed answer finds nothing pending.
    expect((await answer(device, 'old', { outcome: 'refused', error: 'late' })).status).toBe(404);
    expect((await purges(device.uuid))[0]?.state).toBe('purged');

    const entries = (await (
      await server.api(`/v1/audit?fleet=${fleet.slug}&since=${encodeURIComponent(since)}`)
    ).json()) as AuditEntry[];
    const entry = entries.find((e) => e.action === 'volumePurges.purge' && e.status === 202);
    expect(entry).toMatchObject({
      actor: 'bootstrap',
      method: 'POST',
      targets: { uuid: device.uuid, volume: 'old' },
      outcome: 'ok',
    });
    expect(entries.some((e) => e.action === 'volumePurges.purge' && e.status === 409)).toBe(true);
  });

  it('refuses a pending purge once the target release declares the volume, so it never runs later', async () => {
    expect((await purge(device.uuid, 'cache')).status).toBe(202);
    expect((await target(device)).volumePurges).toEqual(['cache']);
    expect(await setTarget(server, device.uuid, withCache.id)).toBe(200);
    expect((await target(device)).volumePurges).toBeUndefined();
    const cache = (await purges(device.uuid)).find((p) => p.volume === 'cache');
    expect(cache).toMatchObject({
      state: 'refused',
      error: `release v${withCache.version} (${withCache.id}) declares it`,
    });
    // The device's own refusal is stored with its reason.
    expect((await purge(device.uuid, 'data')).status).toBe(202);
    expect(
      (await answer(device, 'data', { outcome: 'refused', error: 'in use by a container' })).status,
    ).toBe(204);
    expect((await purges(device.uuid)).find((p) => p.volume === 'data')).toMatchObject({
      state: 'refused',
      error: 'in use by a container',
    });
  });
});
