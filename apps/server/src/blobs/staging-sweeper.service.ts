import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { BlobStore } from './blob.repository';

/**
 * Removes staging folders that crashed or killed processes (this one before a restart, another
 * server or a worker sharing DATA_DIR) left behind: at start and then every third of
 * `FERRY_STAGING_STALE_SECONDS`, so nothing outlives its push by much more than that. Live folders
 * carry their owner's heartbeat and are never taken.
 */
@Injectable()
export class StagingSweeperService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(StagingSweeperService.name);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly blobs: BlobStore,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.sweep();
    const staleMs = this.config.limits.stagingStaleSeconds * 1000;
    this.timer = setInterval(() => {
      this.running ??= this.sweep().finally(() => (this.running = undefined));
    }, staleMs / 3);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async sweep(): Promise<void> {
    try {
      const removed = await this.blobs.sweepTemporaryFiles(this.config.limits.stagingStaleSeconds * 1000);
      if (removed > 0)
        this.logger.log(`removed ${removed} stale temporary entries left by stopped processes`);
      const abandoned = await this.blobs.sweepAbandonedUploads(
        this.config.blobs.abandonedUploadSeconds * 1000,
      );
      if (abandoned > 0)
        this.logger.log(
          `aborted ${abandoned} unfinished uploads left in ${this.blobs.describe()} by stopped processes`,
        );
    } catch (error) {
      this.logger.warn(`sweeping temporary files failed: ${(error as Error).message}`);
    }
  }
}
