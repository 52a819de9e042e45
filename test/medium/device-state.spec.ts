import { FerryEvent } from '@ferry/protocol';
import { DeviceStateModule } from '../../apps/server/src/device-state/device-state.module';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { HealthEventsPrunerService } from '../../apps/server/src/devices/health-events-pruner.service';
import { EventBus } from '../../apps/server/src/events/event-bus.service';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { Medium, registerDevices, startMedium } from '../support/medium';
import { eventually } from '../support/mqtt-devices';
import { DATABASE_KINDS } from '../support/test-server';

const at = (second: number): string => new Date(Date.UTC(2026, 0, 1, 12, 0, second)).toISOString();

describe.each(DATABASE_KINDS)('device state ingestion on %s', (kind) => {
  let m: Medium;
  let state: DeviceStateService;
  let devices: DevicesService;
  let fleetId: string;
  let uuids: string[];
  const events: FerryEvent[] = [];

  beforeAll(async () => {
    // Progress is written by the flush timer only when a test flushes: a long interval.
    m = await startMedium(kind, [DeviceStateModule], { env: { FERRY_STATE_FLUSH_MS: '60000' } });
    state = m.get(DeviceStateService);
    devices = m.get(DevicesService);
    const fleet = await m.get(FleetsService).create({ name: 'ingestion', arch: 'amd64' });
    fleetId = fleet.id;
    uuids = (await registerDevices(m, fleet.slug, 3)).map((d) => d.uuid);
    m.get(EventBus).events$.subscribe((e) => events.push(e));
  });
  afterAll(() => m.close());
  beforeEach(() => (events.length = 0));

  it('deletes health events older than FERRY_HEALTH_EVENTS_DAYS, keeping the rest', async () => {
    const [uuid] = uuids;
    const now = m.clock.nowMs();
    const day = 86_400_000;
    const rows = [45, 31, 29, 1].map((days, i) => ({
      device_uuid: uuid!,
      at: new Date(now - days * day).toISOString(),
      kind: 'restarts',
      count: i + 1,
    }));
    await m.db.insertInto('device_health_events').values(rows).execute();
    const pruner = m.get(HealthEventsPrunerService);
    expect(await pruner.prune()).toBe(2);
    const left = await m.db
      .selectFrom('device_health_events')
      .select(['at', 'count'])
      .where('device_uuid', '=', uuid!)
      .orderBy('at')
      .execute();
    expect(left.map((r) => Number(r.count))).toEqual([3, 4]);
    expect(await pruner.prune()).toBe(0);
    await m.db.deleteFrom('device_health_events').where('device_uuid', '=', uuid!).execute();
  });

  it('coalesces many progress reports of a device into one row write, the newest winning', async () => {
    const [uuid] = uuids;
    await state.flush();
    const before = state.stats();
    for (let i = 1; i <= 10; i += 1)
      state.report(
        uuid!,
        { status: 'downloading', releaseId: 'r-1', bytesDone: i * 10, bytesTotal: 100 },
        at(i),
      );
    await state.flush();
    const after = state.stats();
    expect(after.reports - before.reports).toBe(10);
    expect(after.flushes - before.flushes).toBe(1);
    expect(after.rowsWritten - before.rowsWritten).toBe(1);
    const device = await devices.get(uuid!);
    expect(device.status).toBe('downloading');
    expect(device.report).toEqual({
      releaseId: 'r-1',
      bytesDone: 100,
      bytesTotal: 100,
      error: null,
      at: at(10),
    });
    expect(device.lastSeenAt).toBe(at(10));
    // Progress does not change the release the device runs.
    expect(device.releaseId).toBeNull();
    expect(events.filter((e) => e.type === 'device.state')).toEqual([
      {
        type: 'device.state',
        fleetId,
        at: at(10),
        data: { uuid, status: 'downloading', releaseId: 'r-1', bytesDone: 100, bytesTotal: 100, error: null },
      },
    ]);
  });

  it('writes a status change within moments, without waiting for the flush interval', async () => {
    const [, uuid] = uuids;
    state.report(uuid!, { status: 'running', releaseId: 'r-2' }, at(20));
    const device = await eventually(async () => {
      const d = await devices.get(uuid!);
      return d.status === 'running' ? d : undefined;
    }, 5000);
    // A running report says which release the device runs.
    expect(device.releaseId).toBe('r-2');
  });

  it('never lets a late, older report overwrite a newer one, and last seen only moves forward', async () => {
    const [, , uuid] = uuids;
    state.report(uuid!, { status: 'failed', releaseId: 'r-3', error: 'boom' }, at(30));
    await state.flush();
    state.report(uuid!, { status: 'downloading', releaseId: 'r-3', bytesDone: 1, bytesTotal: 2 }, at(25));
    await state.flush();
    let device = await devices.get(uuid!);
    expect(device.status).toBe('failed');
    expect(device.report?.error).toBe('boom');
    expect(device.lastSeenAt).toBe(at(30));
    state.presence(uuid!, true, at(28));
    await state.flush();
    device = await devices.get(uuid!);
    expect(device.online).toBe(true);
    expect(device.lastSeenAt).toBe(at(30));
    state.presence(uuid!, false, at(40));
    await state.flush();
    device = await devices.get(uuid!);
    expect(device.online).toBe(false);
    expect(device.lastSeenAt).toBe(at(40));
    expect(events.filter((e) => e.type === 'device.presence').map((e) => [e.fleetId, e.data])).toEqual([
      [fleetId, { uuid, online: true }],
      [fleetId, { uuid, online: false }],
    ]);
  });

  it('counts reports of unknown devices and writes nothing for them', async () => {
    const before = state.stats();
    state.report('f'.repeat(32), { status: 'running', releaseId: 'r' }, at(50));
    await state.flush();
    const after = state.stats();
    expect(after.unknownDevices - before.unknownDevices).toBe(1);
    expect(after.rowsWritten - before.rowsWritten).toBe(0);
    expect(events).toEqual([]);
  });

  it('drops what is pending for a device it is told to forget', async () => {
    const [uuid] = uuids;
    state.report(uuid!, { status: 'downloading', releaseId: 'r-9', bytesDone: 5, bytesTotal: 9 }, at(59));
    state.forget(uuid!);
    await state.flush();
    expect((await devices.get(uuid!)).report?.releaseId).toBe('r-1');
  });
});
