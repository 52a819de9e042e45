import { Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { BlobStore } from '@ferry/storage';

/**
 * Removes staging folders that killed builds left in `DATA_DIR/tmp` (a sandboxed encoder killed
 * with the worker's whole process group, or by the OOM killer, cannot discard its own): once before
 * the worker takes jobs, then every third of `FERRY_STAGING_STALE_SECONDS`. Live folders carry their
 * owner's heartbeat (in any process sharing DATA_DIR: builds, uploads) and are never taken. The
 * server sweeps the same folder; this one covers workers on hosts where no server runs.
 */
export class StagingSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Staging');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: BlobStore,
    private readonly staleMs: number,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => {
      this.running ??= this.sweep().finally(() => (this.running = undefined));
    }, this.staleMs / 3).unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async sweep(): Promise<void> {
    try {
      const removed = await this.store.sweepTemporaryFiles(this.staleMs);
      if (removed > 0) this.logger.log(`removed ${removed} staging folder(s) left by stopped delta builds`);
    } catch (error) {
      this.logger.warn(`staging sweep failed: ${(error as Error).message}`);
    }
  }
}
