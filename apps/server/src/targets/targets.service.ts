import { Injectable } from '@nestjs/common';
import { Device, Release, SetTarget, ValidationError } from '@ferry/protocol';
import { DevicesService, publicDevice } from '../devices/devices.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetNotifier } from './target-notifier.service';

/**
 * Which release a device should run: set by an operator for one device, or by a rollout step for a
 * batch of devices; stored (by the devices feature) first, then pushed to the devices as notices.
 */
@Injectable()
export class TargetsService {
  constructor(
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly notifier: TargetNotifier,
  ) {}

  /** An operator's target change: the release must belong to the device's fleet. */
  async setTarget(uuid: string, input: SetTarget): Promise<Device> {
    const device = await this.devices.get(uuid);
    const release = await this.releases.get(input.releaseId);
    if (release.fleetId !== device.fleetId)
      throw new ValidationError(`release ${release.id} belongs to another fleet than device ${uuid}`, {
        field: 'releaseId',
      });
    await this.releases.requireDeployable(release);
    await this.tell([uuid], release, input.rollback === true);
    return publicDevice({ ...device, targetReleaseId: release.id });
  }

  /**
   * Stores `release` as the target of every listed device and notifies them at once (retained, so
   * also the ones that are offline); resolves when the broker has taken every notice. `rollback`: the
   * release is older than one they ran, on purpose (the signed target says so). `issuedAt`: the time of
   * the decision, so that telling the same devices again sends the very same notice (default: now).
   */
  async tell(uuids: string[], release: Release, rollback = false, issuedAt?: string): Promise<void> {
    await this.devices.setTargets(uuids, release.id, rollback);
    const notice = this.notifier.notice(release, issuedAt);
    await this.notifier.notifyTargets(uuids.map((uuid) => ({ uuid, notice })));
  }
}
