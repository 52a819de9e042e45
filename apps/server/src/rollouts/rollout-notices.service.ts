import { Injectable } from '@nestjs/common';
import { Release } from '@ferry/protocol';
import { DeviceNotifier } from '../broker/device-notifier.service';
import { DeltasService } from '../deltas/deltas.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetsRepository } from '../targets/targets.repository';
import { targetNotice } from '../targets/targets.service';
import { projectDownload } from './rollout-planner';
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
    private readonly deltas: DeltasService,
  ) {}

  /** Sends what is pending; `rolloutReleaseId` tells updates from rollbacks. */
  async sendPending(rolloutId: string, rolloutReleaseId: string): Promise<number> {
    const pending = await this.rollouts.pendingNotices(rolloutId);
    if (pending.length === 0) return 0;
    const byRelease = new Map<string, string[]>();
    for (const p of pending) {
      const uuids = byRelease.get(p.releaseId);
      if (uuids) uuids.push(p.uuid);
      else byRelease.set(p.releaseId, [p.uuid]);
    }
    for (const [releaseId, uuids] of byRelease) {
      const release: Release = await this.releases.get(releaseId);
      if (releaseId === rolloutReleaseId) await this.reproject(rolloutId, release, uuids);
      await this.targets.setTarget(uuids, release.id);
      const notice = targetNotice(release, this.notifier.blobsUrl());
      await this.notifier.notifyTargets(uuids.map((uuid) => ({ uuid, notice })));
      await this.rollouts.markNoticesSent(rolloutId, uuids);
    }
    return pending.length;
  }

  /**
   * Projects again, as the devices are told, what they will download: deltas built since the plan
   * (a batch may have waited for them) make it smaller than planned.
   */
  private async reproject(rolloutId: string, release: Release, uuids: string[]): Promise<void> {
    const deltas = await this.deltas.listForRelease(release.id);
    const byFrom = new Map<string | null, string[]>();
    for (const [uuid, from] of await this.rollouts.fromReleasesOf(rolloutId, uuids)) {
      const list = byFrom.get(from);
      if (list) list.push(uuid);
      else byFrom.set(from, [uuid]);
    }
    for (const [fromId, members] of byFrom) {
      const from = fromId ? await this.releases.get(fromId).catch(() => null) : null;
      await this.rollouts.setProjected(
        rolloutId,
        members,
        projectDownload(from, release, deltas).projectedBytes,
      );
    }
    await this.rollouts.refreshProjectedTotal(rolloutId);
  }
}
