import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { Subscription } from 'rxjs';
import {
  EffectiveUpdatePolicy,
  NotFoundError,
  UpdatePolicy,
  UpdatePolicyEntry,
  UpdatePolicyInput,
  UpdatePolicyScope,
  ValidationError,
  effectiveUpdatePolicy,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DeviceEvents } from '../devices/device-events';
import { DevicesService } from '../devices/devices.service';
import { FleetsService } from '../fleets/fleets.service';
import { UpdatePoliciesRepository } from './update-policies.repository';

/** A fleet's update policy entries, as `GET /v1/fleets/{fleet}/update-policy` answers. */
export interface FleetUpdatePolicies {
  fleetId: string;
  entries: UpdatePolicyEntry[];
}

/**
 * When devices may download and install, and how fast they may download: weekly windows and a rate
 * cap set per fleet, tag value or device (docs/rollouts.md "Maintenance windows and metered links").
 * Devices get their effective policy in their signed target; a device waiting for a window asks for its
 * target again at least every minute, so a change reaches it then.
 */
@Injectable()
export class UpdatePoliciesService implements OnModuleDestroy {
  private readonly subscription: Subscription;

  constructor(
    private readonly repository: UpdatePoliciesRepository,
    private readonly fleets: FleetsService,
    private readonly devices: DevicesService,
    private readonly clock: Clock,
    deviceEvents: DeviceEvents,
  ) {
    // A deprovisioned device's own entry goes with it.
    this.subscription = deviceEvents.deprovisioned$.subscribe(({ uuid, fleetId }) => {
      void this.repository.remove(fleetId, { kind: 'device', uuid }).catch(() => undefined);
    });
  }

  onModuleDestroy(): void {
    this.subscription.unsubscribe();
  }

  async list(fleetRef: string): Promise<FleetUpdatePolicies> {
    const fleet = await this.fleets.get(fleetRef);
    return { fleetId: fleet.id, entries: await this.repository.list(fleet.id) };
  }

  /** Replaces what one level (fleet, tag value or device) sets; a level left with nothing is removed. */
  async set(fleetRef: string, input: UpdatePolicyInput): Promise<FleetUpdatePolicies> {
    const fleet = await this.fleets.get(fleetRef);
    const scope = await this.scopeOf(fleet.id, input);
    const settings = {
      maintenanceWindows: input.maintenanceWindows ?? null,
      downloadWindows: input.downloadWindows ?? null,
      downloadRate: input.downloadRate ?? null,
    };
    if (
      settings.maintenanceWindows === null &&
      settings.downloadWindows === null &&
      settings.downloadRate === null
    )
      await this.repository.remove(fleet.id, scope);
    else await this.repository.save(fleet.id, scope, settings, this.clock.iso());
    return this.list(fleet.id);
  }

  /** Removes what one level sets; 404 when it set nothing. */
  async remove(fleetRef: string, level: { tag?: string; device?: string }): Promise<void> {
    const fleet = await this.fleets.get(fleetRef);
    if (level.tag !== undefined && level.device !== undefined)
      throw new ValidationError('name a tag or a device, not both', { field: 'device' });
    const scope = await this.scopeOf(fleet.id, level);
    if (!(await this.repository.remove(fleet.id, scope)))
      throw new NotFoundError(`fleet ${fleet.slug} has no update policy for ${describe(scope)}`);
  }

  /** A device's effective policy, with the level each part comes from. */
  async forDevice(uuid: string): Promise<EffectiveUpdatePolicy & { uuid: string }> {
    const device = await this.devices.get(uuid);
    return {
      uuid: device.uuid,
      ...effectiveUpdatePolicy(await this.repository.list(device.fleetId), device),
    };
  }

  /** What a device's signed target carries: null when nothing applies (any time, no cap). */
  async forTarget(device: {
    uuid: string;
    fleetId: string;
    tags: Record<string, string>;
  }): Promise<UpdatePolicy | null> {
    const entries = await this.repository.list(device.fleetId);
    if (entries.length === 0) return null;
    const { maintenanceWindows, downloadWindows, downloadRate } = effectiveUpdatePolicy(entries, device);
    if (maintenanceWindows.length === 0 && downloadWindows.length === 0 && downloadRate === 0) return null;
    return { maintenanceWindows, downloadWindows, downloadRate };
  }

  private async scopeOf(
    fleetId: string,
    level: { tag?: string; device?: string },
  ): Promise<UpdatePolicyScope> {
    if (level.tag !== undefined) {
      const at = level.tag.indexOf('=');
      if (at < 1) throw new ValidationError('tag: a tag as name=value', { field: 'tag' });
      return { kind: 'tag', tag: level.tag.slice(0, at), value: level.tag.slice(at + 1) };
    }
    if (level.device !== undefined) {
      const device = await this.devices.get(level.device);
      if (device.fleetId !== fleetId)
        throw new ValidationError(`device ${device.uuid} belongs to another fleet`, { field: 'device' });
      return { kind: 'device', uuid: device.uuid };
    }
    return { kind: 'fleet' };
  }
}

function describe(scope: UpdatePolicyScope): string {
  if (scope.kind === 'tag') return `tag ${scope.tag}=${scope.value}`;
  if (scope.kind === 'device') return `device ${scope.uuid}`;
  return 'the fleet';
}
