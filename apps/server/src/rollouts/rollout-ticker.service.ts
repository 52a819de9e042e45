import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { Subscription } from 'rxjs';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { EventBus } from '../events/event-bus.service';
import { ReleaseEvents } from '../releases/release-events';
import { RolloutLockRepository } from './rollout-lock.repository';
import { RolloutsService } from './rollouts.service';

/** How soon after a device report of an active fleet the engine looks again. */
const PROMPT_MS = 50;

/**
 * Drives rollouts: every `FERRY_ROLLOUT_TICK_MS` (and soon after a device of a fleet with an active
 * rollout reports) it re-reads each active rollout from the database and takes one engine step. It
 * holds no state of its own, so a restarted server carries on where the database says it was.
 */
@Injectable()
export class RolloutTicker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RolloutTicker.name);
  private timer: NodeJS.Timeout | null = null;
  private promptTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private activeFleets = new Set<string>();
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly rollouts: RolloutsService,
    private readonly lock: RolloutLockRepository,
    private readonly bus: EventBus,
    private readonly releaseEvents: ReleaseEvents,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    for (const rollout of await this.rollouts.active()) await this.rollouts.resendInFlight(rollout.id);
    this.subscriptions.push(
      this.bus.events$.subscribe((event) => {
        if (event.type !== 'device.state' && event.type !== 'device.presence') return;
        if (event.fleetId && this.activeFleets.has(event.fleetId)) this.soon();
      }),
      this.releaseEvents.pushed$.subscribe((release) => {
        this.rollouts
          .onReleasePushed(release)
          .catch((error: Error) =>
            this.logger.warn(`track latest for release ${release.id}: ${error.message}`),
          );
      }),
    );
    this.timer = setInterval(() => this.kick(), this.config.rolloutTickMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops ticking and waits for a step in progress, before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    for (const s of this.subscriptions) s.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    if (this.promptTimer) clearTimeout(this.promptTimer);
    await this.running;
  }

  /** Runs one pass over every active rollout now (tests call it to avoid waiting for the clock). */
  async tick(): Promise<void> {
    const active = await this.rollouts.active();
    this.activeFleets = new Set(active.map((r) => r.fleetId));
    if (active.length === 0) return;
    if (!(await this.lock.acquire(Math.max(10_000, this.config.rolloutTickMs * 5)))) return;
    try {
      for (const rollout of active) {
        if (this.stopped) return;
        try {
          await this.rollouts.step(rollout.id);
        } catch (error) {
          this.logger.warn(
            `rollout ${rollout.id}: step failed, retried next tick: ${(error as Error).message}`,
          );
        }
      }
    } finally {
      await this.lock.release().catch(() => undefined);
    }
  }

  private soon(): void {
    if (this.promptTimer || this.stopped) return;
    this.promptTimer = setTimeout(() => {
      this.promptTimer = null;
      this.kick();
    }, PROMPT_MS);
  }

  /** Starts a pass unless one runs; a kick during a pass runs another right after it. */
  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch((error: Error) => this.logger.warn(`rollout tick failed: ${error.message}`))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }
}
