import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Subscription } from 'rxjs';
import {
  FleetRolloutSettings,
  FleetSettingsInput,
  Release,
  RolloutStrategy,
  RolloutStrategySchema,
  ValidationError,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FleetsService } from '../fleets/fleets.service';
import { ReleaseEvents } from '../releases/release-events';
import { checkBatchSpec } from '../rollouts/rollout-planner';
import { RolloutRunningService } from '../rollouts/rollout-running.service';
import { RolloutSettingsRepository } from './rollout-settings.repository';

/**
 * A fleet's rollout settings: its default strategy and "track latest", which starts a rollout with
 * that strategy whenever a release is pushed to the fleet.
 */
@Injectable()
export class RolloutSettingsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RolloutSettingsService.name);
  private subscription: Subscription | null = null;

  constructor(
    private readonly settingsRepository: RolloutSettingsRepository,
    private readonly fleets: FleetsService,
    private readonly running: RolloutRunningService,
    private readonly releaseEvents: ReleaseEvents,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    this.subscription = this.releaseEvents.pushed$.subscribe((release) => {
      this.onReleasePushed(release).catch((error: Error) =>
        this.logger.warn(`track latest for release ${release.id}: ${error.message}`),
      );
    });
  }

  beforeApplicationShutdown(): void {
    this.subscription?.unsubscribe();
  }

  async settings(fleetRef: string): Promise<FleetRolloutSettings> {
    const fleet = await this.fleets.get(fleetRef);
    const saved = await this.settingsRepository.find(fleet.id);
    return {
      fleetId: fleet.id,
      trackLatest: saved?.trackLatest ?? false,
      defaultStrategy: saved?.defaultStrategy ?? RolloutStrategySchema.parse({}),
    };
  }

  async update(fleetRef: string, input: FleetSettingsInput): Promise<FleetRolloutSettings> {
    const current = await this.settings(fleetRef);
    const strategy: RolloutStrategy = input.defaultStrategy ?? current.defaultStrategy;
    checkBatchSpec(strategy.batches);
    if (strategy.startAt !== undefined)
      throw new ValidationError(
        'defaultStrategy.startAt: a fleet default cannot start at a fixed time; schedule a rollout instead',
        { field: 'defaultStrategy.startAt' },
      );
    const trackLatest = input.trackLatest ?? current.trackLatest;
    await this.settingsRepository.save(
      current.fleetId,
      { trackLatest, defaultStrategy: strategy },
      this.clock.iso(),
    );
    return { fleetId: current.fleetId, trackLatest, defaultStrategy: strategy };
  }

  /** "Track latest": a pushed release starts a rollout with the fleet's default strategy. */
  async onReleasePushed(release: Release): Promise<void> {
    const saved = await this.settingsRepository.find(release.fleetId);
    if (!saved?.trackLatest) return;
    const { rollout } = await this.running.create(
      release.fleetId,
      { releaseId: release.id, strategy: saved.defaultStrategy, dryRun: false },
      { trigger: 'track-latest', supersede: true },
    );
    this.logger.log(`fleet ${release.fleetId} tracks the latest release: rollout ${rollout.id} started`);
  }
}
