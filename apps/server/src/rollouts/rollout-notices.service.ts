import { Injectable } from '@nestjs/common';
import { Release } from '@ferry/protocol';
import { DeviceNotifier } from '../broker/device-notifier.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetsRepository } from '../targets/targets.repository';
import { targetNotice } from '../targets/targets.service';
import { RolloutsRepository } from './rollouts.repository';

/**
 * The effects of a rollout step: sets devices' targets and publishes their retained MQTT notices for
 * every device the database marks as not told yet, then marks them told. Repeating it is harmless.
 */
@Injectable()
export class RolloutNotices {
  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly targets: TargetsRepository,
    private readonly notifier: DeviceNotifier,
    private readonly releases: ReleasesService,
  ) {}

  async sendPending(rolloutId: string): Promise<number> {
    const pending = await this.rollouts.pendingNotices(rolloutId);
    if (pending.length === 0) return 0;
    const byRelease = new Map<string, string[]>();
    for (const p of pending) byRelease.set(p.releaseId, [...(byRelease.get(p.releaseId) ?? []), p.uuid]);
    for (const [releaseId, uuids] of byRelease) {
      const release: Release = await this.releases.get(releaseId);
      await this.targets.setTarget(uuids, release.id);
      const notice = targetNotice(release, this.notifier.blobsUrl());
      await this.notifier.notifyTargets(uuids.map((uuid) => ({ uuid, notice })));
      await this.rollouts.markNoticesSent(rolloutId, uuids);
    }
    return pending.length;
  }
}
