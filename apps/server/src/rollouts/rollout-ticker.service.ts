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
import { RolloutLockRepository } from './rollout-lock.repository';
import { RolloutRunningService } from './rollout-running.service';

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
    private readonly rollouts: RolloutRunningService,
    private readonly lock: RolloutLockRepository,
    private readonly bus: EventBus,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Only a lone embedded broker loses retained notices with its process; a clustered (Redis) or
    // external broker keeps them, and re-sending would notify devices twice for the same step.
    if (this.config.mqtt.cluster === 'none' && this.config.mqtt.externalUrl === null)
      await this.lock.run(async () => {
        for (const rollout of await this.rollouts.active()) await this.rollouts.resendInFlight(rollout.id);
      });
    this.subscriptions.push(
      this.bus.events$.subscribe((event) => {
        if (event.type !== 'device.state' && event.type !== 'device.presence') return;
        if (event.fleetId && this.activeFleets.has(event.fleetId)) this.soon();
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
    await this.lock.run(async (held) => {
      for (const rollout of active) {
        // A leader that lost its lease (it stalled past the TTL) stops: another process leads now.
        if (this.stopped || !held()) return;
        try {
          await this.rollouts.step(rollout.id);
        } catch (error) {
          this.logger.warn(
            `rollout ${rollout.id}: step failed, retried next tick: ${(error as Error).message}`,
          );
        }
      }
    });
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
      .catch((error: Error) => {
        // While Redis is away (no lease) the outage line says so once, not once per tick.
        if (!this.lock.redisAway) this.logger.warn(`rollout tick failed: ${error.message}`);
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }
}
