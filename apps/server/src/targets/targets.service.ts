import { Injectable } from '@nestjs/common';
import { Device, Release, SetTarget, TargetNotice, ValidationError } from '@ferry/protocol';
import { DeviceNotifier } from '../broker/device-notifier.service';
import { DevicesService, publicDevice } from '../devices/devices.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetsRepository } from './targets.repository';

/** The notice that tells a device to run `release`. */
export function targetNotice(release: Release, blobsUrl: string): TargetNotice {
  return {
    releaseId: release.id,
    version: release.version,
    fleetId: release.fleetId,
    issuedAt: new Date().toISOString(),
    blobsUrl,
    manifest: release.manifest as unknown as Record<string, unknown>,
    signature: release.signature,
  };
}

/**
 * Which release a device should run. For now an operator sets it per device; the rollout engine will
 * set it for batches of devices through the same repository and {@link DeviceNotifier}.
 */
@Injectable()
export class TargetsService {
  constructor(
    private readonly targets: TargetsRepository,
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly notifier: DeviceNotifier,
  ) {}

  /** Stores the device's target and notifies it at once (retained, so also when it is offline). */
  async setTarget(uuid: string, input: SetTarget): Promise<Device> {
    const device = await this.devices.get(uuid);
    const release = await this.releases.get(input.releaseId);
    if (release.fleetId !== device.fleetId)
      throw new ValidationError(`release ${release.id} belongs to another fleet than device ${uuid}`, {
        field: 'releaseId',
      });
    await this.targets.setTarget([uuid], release.id);
    await this.notifier.notifyTarget(uuid, targetNotice(release, this.notifier.blobsUrl()));
    return publicDevice({ ...device, targetReleaseId: release.id });
  }
}
