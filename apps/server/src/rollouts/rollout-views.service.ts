import { Injectable } from '@nestjs/common';
import { NotFoundError, RolloutDeviceView, RolloutState, RolloutView } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FleetsService } from '../fleets/fleets.service';
import { ReleasesService } from '../releases/releases.service';
import { RolloutHealthService } from './rollout-health.service';
import { RolloutSamplesRepository } from './rollout-samples.repository';
import { rolloutView } from './rollout-views';
import { RolloutsRepository } from './rollouts.repository';

/** Samples kept in a rollout's view (its chart). */
const HISTORY_SAMPLES = 500;

/** Reads rollouts as the API shows them ({@link rolloutView}); changes nothing. */
@Injectable()
export class RolloutViewsService {
  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly samples: RolloutSamplesRepository,
    private readonly fleets: FleetsService,
    private readonly releases: ReleasesService,
    private readonly health: RolloutHealthService,
    private readonly clock: Clock,
  ) {}

  /** A fleet's rollouts, newest first, without their history. */
  async list(fleetRef: string, state: RolloutState | undefined, limit: number): Promise<RolloutView[]> {
    const fleet = await this.fleets.get(fleetRef);
    const records = await this.rollouts.listForFleet(fleet.id, state, limit);
    return Promise.all(records.map((r) => this.view(r.id, 0)));
  }

  async view(id: string, historySamples = HISTORY_SAMPLES): Promise<RolloutView> {
    const rollout = await this.rollouts.find(id);
    if (!rollout) throw new NotFoundError(`no rollout ${id}`);
    const [release, batches, devices, history] = await Promise.all([
      this.releases.get(rollout.releaseId),
      this.rollouts.batches(id),
      this.rollouts.devices(id),
      historySamples > 0 ? this.samples.latest(id, historySamples) : Promise.resolve([]),
    ]);
    const comparison = rollout.strategy.healthComparison;
    const baking = batches.find((b) => b.number === rollout.currentBatch && b.state === 'baking');
    const interimHealth =
      comparison && baking && !baking.health && (rollout.state === 'running' || rollout.state === 'paused')
        ? await this.health.interim(
            baking,
            comparison,
            rollout.strategy.bakeSeconds,
            devices,
            this.clock.nowMs(),
          )
        : null;
    return rolloutView({
      rollout,
      releaseVersion: release.version,
      batches,
      devices,
      history,
      interimHealth,
    });
  }

  async devices(id: string): Promise<RolloutDeviceView[]> {
    if (!(await this.rollouts.find(id))) throw new NotFoundError(`no rollout ${id}`);
    return this.rollouts.devices(id);
  }
}
