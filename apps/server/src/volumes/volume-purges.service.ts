import { Injectable } from '@nestjs/common';
import {
  ComposeNameSchema,
  ConflictError,
  NotFoundError,
  Release,
  VolumePurge,
  VolumePurgeOutcome,
  parseWith,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DevicesService } from '../devices/devices.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetNotifier } from '../targets/target-notifier.service';
import { VolumePurgesRepository } from './volume-purges.repository';

/** Whether `release` declares the app volume `volume` (top-level `volumes` of its compose file). */
export function declaresVolume(release: Release, volume: string): boolean {
  return Object.hasOwn(release.manifest.app?.volumes ?? {}, volume);
}

/**
 * `ferry device purge-volume` (docs/compose.md "Volumes"): updates never drop a volume a release no
 * longer declares; an operator purges it. Refused while the release the device runs or is to run
 * declares it. The device learns of the request with its target (a fresh notice wakes it) and answers
 * with the outcome.
 */
@Injectable()
export class VolumePurgesService {
  constructor(
    private readonly purges: VolumePurgesRepository,
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly notifier: TargetNotifier,
    private readonly clock: Clock,
  ) {}

  async request(uuid: string, volume: string, by: string): Promise<VolumePurge> {
    const device = await this.devices.get(uuid);
    parseWith(ComposeNameSchema, volume, 'volume');
    const running = device.releaseId ? await this.releases.get(device.releaseId) : null;
    const target = device.targetReleaseId ? await this.releases.get(device.targetReleaseId) : null;
    for (const [release, how] of [
      [running, 'runs'],
      [target, 'is to run'],
    ] as const)
      if (release && declaresVolume(release, volume))
        throw new ConflictError(
          `volume "${volume}" is declared by release v${release.version} (${release.id}), which device ${uuid} ${how}: purge it once no release it runs declares it`,
          { field: 'volume' },
        );
    const purge = await this.purges.request(uuid, volume, by, this.clock.iso());
    if (target) await this.notifier.notifyTargets([{ uuid, notice: this.notifier.notice(target) }]);
    return purge;
  }

  async list(uuid: string): Promise<VolumePurge[]> {
    await this.devices.get(uuid);
    return this.purges.list(uuid);
  }

  /**
   * The pending purges a device's target answer carries: those `target` declares are refused here
   * (a release that uses the volume came after the request), never carried out later.
   */
  async forTarget(uuid: string, target: Release | null): Promise<string[]> {
    const pending = await this.purges.pending(uuid);
    const out: string[] = [];
    for (const volume of pending) {
      if (target && declaresVolume(target, volume))
        await this.purges.finish(
          uuid,
          volume,
          'refused',
          this.clock.iso(),
          `release v${target.version} (${target.id}) declares it`,
        );
      else out.push(volume);
    }
    return out;
  }

  /** The device's answer to a pending purge. */
  async finish(uuid: string, volume: string, outcome: VolumePurgeOutcome): Promise<void> {
    parseWith(ComposeNameSchema, volume, 'volume');
    const error = outcome.outcome === 'refused' ? (outcome.error ?? 'refused by the device') : null;
    if (!(await this.purges.finish(uuid, volume, outcome.outcome, this.clock.iso(), error)))
      throw new NotFoundError(`no pending purge of volume "${volume}" for device ${uuid}`);
  }
}
