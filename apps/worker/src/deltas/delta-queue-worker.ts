import { join } from 'node:path';
import { Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ConnectionOptions, Worker } from 'bullmq';
import { QueueName } from '@ferry/protocol';
import { RedisOutageMonitor, redisOptions, settleWithin } from '@ferry/storage';
import { WorkerConfig } from '../config/worker-config';

/** How long a stop waits for running builds while Redis answers (they cannot finish while it is away). */
const STOP_WAIT_MS = 3000;

/**
 * The BullMQ worker of the delta queue, made here rather than by @nestjs/bullmq so that its
 * connection errors reach the process's {@link RedisOutageMonitor} (one line per outage) and its stop
 * is bounded. Jobs run in sandboxed children (build-delta.sandbox.js, compiled beside this file).
 */
export class DeltaQueueWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Deltas');
  private worker: Worker | undefined;

  constructor(
    private readonly config: WorkerConfig,
    private readonly monitor: RedisOutageMonitor,
  ) {}

  onApplicationBootstrap(): void {
    const { config } = this;
    this.worker = this.monitor.watch(
      new Worker(QueueName.Deltas, join(__dirname, 'build-delta.sandbox.js'), {
        // BullMQ types its options on its own: ioredis's (which it passes them to) are not assignable.
        connection: redisOptions(config.redis, { maxRetriesPerRequest: null }) as ConnectionOptions,
        prefix: config.queuePrefix,
        concurrency: config.concurrency,
        lockDuration: config.lockDurationMs,
        stalledInterval: config.lockDurationMs,
        maxStalledCount: 2,
        useWorkerThreads: false,
      }),
    );
    this.worker.on('failed', (job, error) =>
      this.logger.warn(`delta job ${job?.id ?? '?'} failed: ${error.message}`),
    );
    this.worker.on('completed', (job) => this.logger.debug(`delta job ${job.id ?? '?'} done`));
  }

  async onApplicationShutdown(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    // Waits for running builds while Redis answers (bounded); during an outage it stops at once.
    if (this.monitor.down || !(await settleWithin(STOP_WAIT_MS, worker.close())))
      await settleWithin(1000, Promise.all([worker.close(true), worker.disconnect()]));
  }
}
