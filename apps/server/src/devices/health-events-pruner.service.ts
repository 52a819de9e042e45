import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { DeviceReportsRepository } from './device-reports.repository';

const HOUR_MS = 3_600_000;

/**
 * Keeps `device_health_events` from growing without end: events older than `FERRY_HEALTH_EVENTS_DAYS`
 * (longer than any bake window the control-group comparison reads) are deleted at start and hourly.
 * Every replica does it; a delete by age is the same whoever runs it.
 */
@Injectable()
export class HealthEventsPrunerService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(HealthEventsPrunerService.name);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly reports: DeviceReportsRepository,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.prune(), HOUR_MS);
    this.timer.unref();
    void this.prune();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Deletes the events past retention now; returns how many (0 when it failed, which is logged). */
  prune(): Promise<number> {
    this.running ??= this.pruneOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pruneOnce(): Promise<number> {
    const before = new Date(
      this.clock.nowMs() - this.config.limits.healthEventsDays * 86_400_000,
    ).toISOString();
    try {
      const removed = await this.reports.pruneHealthEvents(before);
      if (removed > 0) this.logger.log(`removed ${removed} device health events older than ${before}`);
      return removed;
    } catch (error) {
      this.logger.warn(`pruning device health events failed: ${(error as Error).message}`);
      return 0;
    }
  }
}
