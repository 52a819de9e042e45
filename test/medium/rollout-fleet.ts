import { DeviceStatus, FerryEvent } from '@ferry/protocol';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { EventBus } from '../../apps/server/src/events/event-bus.service';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { Medium, pushRelease, registerDevices } from '../support/medium';

/** A fleet whose devices all run v1, with v2 pushed: what the rollout medium tests start from. */
export interface FleetOnV1 {
  slug: string;
  fleetId: string;
  v1: string;
  v2: string;
  uuids: string[];
  /** A device's report, as ingestion writes it (received now by the fake clock). */
  report(uuid: string, status: DeviceStatus, releaseId: string | null): Promise<void>;
  /** Events on the bus since the fleet was made. */
  events: FerryEvent[];
}

let fleets = 0;

export async function fleetOnV1(m: Medium, devices: number): Promise<FleetOnV1> {
  fleets += 1;
  const fleet = await m.get(FleetsService).create({ name: `medium ${fleets}`, arch: 'amd64' });
  // Layers are content-addressed and shared between fleets: each fleet gets its own.
  const files = (v: number) => ({ 'app/version': `v${v}\n`, 'app/fleet': `${fleet.id}\n` });
  const v1 = await pushRelease(m, fleet.slug, 1, files(1));
  const v2 = await pushRelease(m, fleet.slug, 2, files(2));
  const uuids = (await registerDevices(m, fleet.slug, devices)).map((d) => d.uuid);
  const state = m.get(DeviceStateService);
  const report = async (uuid: string, status: DeviceStatus, releaseId: string | null): Promise<void> => {
    state.report(uuid, { status, releaseId }, m.clock.iso());
    await state.flush();
  };
  for (const uuid of uuids) await report(uuid, 'running', v1.id);
  const events: FerryEvent[] = [];
  m.get(EventBus).events$.subscribe((event) => {
    if (event.fleetId === fleet.id) events.push(event);
  });
  return { slug: fleet.slug, fleetId: fleet.id, v1: v1.id, v2: v2.id, uuids, report, events };
}

/** The UUIDs of the devices told a target on the bus, in order. */
export function told(events: FerryEvent[]): { uuid: unknown; releaseId: unknown }[] {
  return events
    .filter((e) => e.type === 'device.target')
    .map((e) => ({ uuid: e.data.uuid, releaseId: e.data.releaseId }));
}

/** The target notices on the bus, in order, with the time each says it was issued. */
export function toldNotices(
  events: FerryEvent[],
): { uuid: unknown; releaseId: unknown; issuedAt: unknown }[] {
  return events
    .filter((e) => e.type === 'device.target')
    .map((e) => ({ uuid: e.data.uuid, releaseId: e.data.releaseId, issuedAt: e.data.issuedAt }));
}
