import { Injectable } from '@nestjs/common';
import { Release } from '@ferry/protocol';
import { ReleasesService } from '../releases/releases.service';
import { TargetsService } from '../targets/targets.service';
import { RolloutNoticesRepository } from './rollout-notices.repository';
import { RolloutPlanningService } from './rollout-planning.service';

/**
 * The effects of a rollout step: sets devices' targets and publishes their retained MQTT notices for
 * every device the outbox holds as not told yet, then marks them told. Repeating it is harmless.
 */
@Injectable()
export class RolloutNotices {
  constructor(
    private readonly outbox: RolloutNoticesRepository,
    private readonly targets: TargetsService,
    private readonly releases: ReleasesService,
    private readonly planning: RolloutPlanningService,
  ) {}

  /** Sends what is pending; `rolloutReleaseId` tells updates from rollbacks. */
  async sendPending(rolloutId: string, rolloutReleaseId: string): Promise<number> {
    let sent = 0;
    for (const { releaseId, issuedAt, uuids } of await this.outbox.pending(rolloutId)) {
      const release: Release = await this.releases.get(releaseId);
      const rollback = releaseId !== rolloutReleaseId;
      if (!rollback) await this.planning.reproject(rolloutId, release, uuids);
      // A rollout's automatic rollback is one the operator asked for when choosing the strategy.
      await this.targets.tell(uuids, release, rollback, issuedAt ?? undefined);
      await this.outbox.markSent(rolloutId, uuids);
      sent += uuids.length;
    }
    return sent;
  }
}
