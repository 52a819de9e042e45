import {
  NotFoundError,
  TargetNotice,
  ValidationError,
  deviceTopic,
  verifySignedTarget,
} from '@ferry/protocol';
import { BlobsModule } from '../../apps/server/src/blobs/blobs.module';
import { BrokerService } from '../../apps/server/src/broker/broker.service';
import { DeltasRepository } from '../../apps/server/src/deltas/deltas.repository';
import { DeltasService } from '../../apps/server/src/deltas/deltas.service';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { TargetKeysService } from '../../apps/server/src/target-keys/target-keys.service';
import { DeviceTargetService } from '../../apps/server/src/targets/device-target.service';
import { TargetsModule } from '../../apps/server/src/targets/targets.module';
import { TargetsService } from '../../apps/server/src/targets/targets.service';
import { Medium, pushRelease, registerDevices, startMedium } from '../support/medium';
import { connectDevice, eventually } from '../support/mqtt-devices';
import { DATABASE_KINDS } from '../support/test-server';

describe.each(DATABASE_KINDS)('targets on %s', (kind) => {
  let m: Medium;
  let targets: TargetsService;
  let fleets = 0;

  beforeAll(async () => {
    m = await startMedium(kind, [BlobsModule, TargetsModule]);
    targets = m.get(TargetsService);
  });
  afterAll(() => m.close());

  /** A fleet with two releases (a layer of its own each) and `count` devices. */
  const fleet = async (count: number) => {
    fleets += 1;
    const f = await m.get(FleetsService).create({ name: `targets ${fleets}`, arch: 'amd64' });
    const files = (v: number) => ({ 'app/version': `v${v}\n`, 'app/fleet': `${f.id}\n` });
    const v1 = await pushRelease(m, f.slug, 1, files(1));
    const v2 = await pushRelease(m, f.slug, 2, files(2));
    return { ...f, v1, v2, devices: await registerDevices(m, f.slug, count) };
  };

  it("stores an operator's target and pushes the signed notice, retained, to the device's topic", async () => {
    const f = await fleet(1);
    const device = f.devices[0]!;
    const answer = await targets.setTarget(device.uuid, { releaseId: f.v2.id });
    expect(answer.targetReleaseId).toBe(f.v2.id);
    expect(answer).not.toHaveProperty('keyHash');
    expect((await m.get(DevicesService).get(device.uuid)).targetReleaseId).toBe(f.v2.id);
    // Retained: a device that connects afterwards gets it.
    const client = await connectDevice(`mqtt://127.0.0.1:${m.get(BrokerService).port()}`, device, {
      clean: true,
    });
    try {
      const received = new Promise<TargetNotice>((resolve) =>
        client.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as TargetNotice)),
      );
      await client.subscribeAsync(deviceTopic(device.uuid, 'target'), { qos: 1 });
      expect(await received).toEqual({
        releaseId: f.v2.id,
        version: 2,
        fleetId: f.id,
        issuedAt: m.clock.iso(),
        blobsUrl: `${m.config.http.publicUrl}/v1/blobs`,
        manifest: f.v2.manifest,
        signature: f.v2.signature,
      });
    } finally {
      await client.endAsync();
    }
  });

  it('refuses a release of another fleet and an unknown device, and changes nothing', async () => {
    const f = await fleet(1);
    const other = await fleet(0);
    const uuid = f.devices[0]!.uuid;
    await expect(targets.setTarget(uuid, { releaseId: other.v1.id })).rejects.toThrow(ValidationError);
    await expect(targets.setTarget('0'.repeat(32), { releaseId: f.v1.id })).rejects.toThrow(NotFoundError);
    expect((await m.get(DevicesService).get(uuid)).targetReleaseId).toBeNull();
  });

  it("answers a device's target with the cheapest download of each layer it lacks", async () => {
    const f = await fleet(2);
    const [a, b] = f.devices;
    const resolve = m.get(DeviceTargetService);
    expect(await resolve.resolve(a!.uuid, [])).toMatchObject({
      uuid: a!.uuid,
      targetVersion: 0,
      release: null,
      layers: [],
      downloadBytes: 0,
      fullBytes: 0,
      configs: [],
    });
    await targets.tell([a!.uuid, b!.uuid], f.v2);
    const v1Layers = f.v1.services[0]!.layers.map((l) => l.diffId);
    const v2Layer = f.v2.services[0]!.layers[0]!;
    // Nothing built yet: the gzip'd layer.
    let target = await resolve.resolve(a!.uuid, v1Layers);
    expect(target.release?.id).toBe(f.v2.id);
    expect(target.layers.map((l) => l.download?.kind)).toEqual(['full']);
    expect(target.downloadBytes).toBe(v2Layer.gzipSize);
    // A ready delta from the layers the device holds, smaller than the gzip: offered instead.
    const [delta] = await m.get(DeltasService).planBetween(f.v1, f.v2);
    await m
      .get(DeltasRepository)
      .update(delta!.key, { state: 'ready', digest: `sha256:${'e'.repeat(64)}`, size: 9 });
    target = await resolve.resolve(a!.uuid, v1Layers);
    expect(target.layers[0]?.download).toMatchObject({ kind: 'delta', size: 9, bases: v1Layers });
    expect(target).toMatchObject({ downloadBytes: 9, fullBytes: v2Layer.gzipSize });
    // …but never to a device that lacks the delta's base, nor for a layer it holds.
    expect((await resolve.resolve(b!.uuid, [])).layers[0]?.download?.kind).toBe('full');
    expect((await resolve.resolve(b!.uuid, [v2Layer.diffId])).downloadBytes).toBe(0);
  });

  it('signs every target with the online key, for the device, with a version that grows with each change and an expiry', async () => {
    const f = await fleet(2);
    const [a, b] = f.devices;
    const resolve = m.get(DeviceTargetService);
    const key = await m.get(TargetKeysService).currentPublicKey();
    const now = m.clock.nowMs();
    await targets.tell([a!.uuid, b!.uuid], f.v2);
    await targets.tell([a!.uuid], f.v1, true);
    const first = verifySignedTarget(await resolve.resolve(a!.uuid, []), key, a!.uuid, now);
    expect(first).toMatchObject({
      targetVersion: 2,
      rollback: true,
      onlineKey: key,
      release: { id: f.v1.id },
    });
    expect(Date.parse(first.expires)).toBe(now + 7 * 24 * 3600 * 1000);
    expect(() => verifySignedTarget(first, key, b!.uuid, now)).toThrow(/addressed to device/);
    expect(() => verifySignedTarget(first, key, a!.uuid, Date.parse(first.expires))).toThrow(/expired/);
    // The device's own count, stored: b was changed once; an operator's change is not a rollback.
    const other = await resolve.resolve(b!.uuid, []);
    expect(other).toMatchObject({ targetVersion: 1, rollback: false, release: { id: f.v2.id } });
    await targets.setTarget(a!.uuid, { releaseId: f.v2.id });
    expect(await resolve.resolve(a!.uuid, [])).toMatchObject({ targetVersion: 3, rollback: false });
    await targets.setTarget(a!.uuid, { releaseId: f.v1.id, rollback: true });
    expect(await resolve.resolve(a!.uuid, [])).toMatchObject({ targetVersion: 4, rollback: true });
  });

  it('rotates the online key: the previous key co-signs until the next rotation, then only the two newest sign', async () => {
    const f = await fleet(1);
    const uuid = f.devices[0]!.uuid;
    const keys = m.get(TargetKeysService);
    const resolve = m.get(DeviceTargetService);
    const before = await keys.currentPublicKey();
    const rotated = await keys.rotate();
    const target = await resolve.resolve(uuid, []);
    expect(target.onlineKey).toBe(rotated.publicKey);
    // A device that pinned the old key verifies it, and so does one that pins the new one.
    expect(verifySignedTarget(target, before, uuid, m.clock.nowMs()).onlineKey).toBe(rotated.publicKey);
    verifySignedTarget(target, rotated.publicKey, uuid, m.clock.nowMs());
    await keys.rotate();
    const later = await resolve.resolve(uuid, []);
    expect(() => verifySignedTarget(later, before, uuid, m.clock.nowMs())).toThrow(
      /not signed by the server's online key/,
    );
    verifySignedTarget(later, rotated.publicKey, uuid, m.clock.nowMs());
    expect((await keys.list()).map((k) => k.role).slice(0, 3)).toEqual(['current', 'previous', 'retired']);
  });

  it('has deltas built on demand for a device on a release nobody planned deltas from', async () => {
    const f = await fleet(1);
    const device = f.devices[0]!;
    const state = m.get(DeviceStateService);
    state.report(device.uuid, { status: 'running', releaseId: f.v1.id }, m.clock.iso());
    await state.flush();
    await targets.tell([device.uuid], f.v2);
    expect(await m.get(DeltasService).listForRelease(f.v2.id)).toEqual([]);
    await m.get(DeviceTargetService).resolve(device.uuid, []);
    // Asked for in the background: the answer does not wait for it.
    const deltas = await eventually(async () => {
      const list = await m.get(DeltasService).listForRelease(f.v2.id);
      return list.length > 0 ? list : undefined;
    });
    expect(deltas.map((d) => [d.state, d.bases])).toEqual([
      ['queued', f.v1.services[0]!.layers.map((l) => l.diffId)],
    ]);
  });
});
