import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { ConnectionOptions, Job, Queue, QueueEvents } from 'bullmq';
import { DeltaJobData, DeltaJobName, DeltaJobResult, DeltaJobResultSchema, QueueName } from '@ferry/protocol';
import { RedisOutageMonitor, queueOwnerKey, redisOptions, settleWithin } from '@ferry/storage';
import { Redis } from 'ioredis';
import { FERRY_CONFIG } from '../config/config.module';
import { REDIS, REDIS_MONITOR } from '../redis/redis.module';
import { FerryConfig } from '../config/config';

export type DeltaJobState =
  | { state: 'waiting' | 'active' | 'delayed' | 'prioritized' | 'waiting-children' }
  | { state: 'completed'; result: DeltaJobResult }
  | { state: 'failed'; reason: string }
  | { state: 'missing' };

/**
 * The delta job queue in Redis (BullMQ): enqueue by key (a repeat with the same key is a no-op while
 * the job exists), look a job up, and hear when jobs finish.
 */
@Injectable()
export class DeltaJobsRepository implements OnApplicationShutdown {
  private readonly queue: Queue;
  private readonly events: QueueEvents;

  constructor(
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_MONITOR) private readonly monitor: RedisOutageMonitor,
  ) {
    // BullMQ types its options on its own: ioredis's (which it passes them to) are not assignable.
    const connection = redisOptions(config.redis, { maxRetriesPerRequest: null }) as ConnectionOptions;
    this.queue = monitor.watch(new Queue(QueueName.Deltas, { connection, prefix: config.queuePrefix }));
    this.events = monitor.watch(
      new QueueEvents(QueueName.Deltas, { connection, prefix: config.queuePrefix }),
    );
  }

  async enqueue(data: DeltaJobData): Promise<void> {
    await this.queue.add(
      DeltaJobName.Build,
      { ...data, installId: this.config.installId },
      {
        jobId: data.key,
        attempts: 3,
        backoff: { type: 'exponential', delay: 5000 },
        removeOnComplete: { age: 7 * 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      },
    );
  }

  async state(key: string): Promise<DeltaJobState> {
    const job = (await this.queue.getJob(key)) as Job<DeltaJobData, unknown> | undefined;
    if (!job) return { state: 'missing' };
    const state = await job.getState();
    if (state === 'completed') {
      const parsed = DeltaJobResultSchema.safeParse(job.returnvalue);
      return parsed.success
        ? { state: 'completed', result: parsed.data }
        : { state: 'failed', reason: 'worker returned a malformed result' };
    }
    if (state === 'failed') return { state: 'failed', reason: job.failedReason || 'failed' };
    if (state === 'unknown') return { state: 'missing' };
    return { state };
  }

  /** Removes a finished or failed job so the same key can be enqueued again. */
  async remove(key: string): Promise<void> {
    await this.queue.remove(key);
  }

  onCompleted(listener: (key: string) => void): void {
    this.events.on('completed', ({ jobId }) => listener(jobId));
  }

  /** Only final failures (after the last retry) are reported. */
  onFailed(listener: (key: string) => void): void {
    this.events.on('failed', ({ jobId }) => listener(jobId));
  }

  onActive(listener: (key: string) => void): void {
    this.events.on('active', ({ jobId }) => listener(jobId));
  }

  async waitUntilReady(): Promise<void> {
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
  }

  /**
   * Records in Redis that this queue namespace is this install's (`<prefix>:install`): a worker checks it
   * at start against the install id of the DATA_DIR it sees. Refreshed with every reconciliation, so a
   * Redis that lost it has it again within seconds.
   */
  async registerOwner(): Promise<void> {
    await this.redis.set(queueOwnerKey(this.config.queuePrefix), this.config.installId);
  }

  /** Redis is known to be away (its outage was logged once). */
  get redisAway(): boolean {
    return this.monitor.down;
  }

  async onApplicationShutdown(): Promise<void> {
    // close() waits for Redis: during an outage the connections are dropped instead (and even that
    // waits for sockets, so it is bounded too).
    if (
      this.monitor.down ||
      !(await settleWithin(3000, Promise.all([this.events.close(), this.queue.close()])))
    )
      await settleWithin(1000, Promise.all([this.events.disconnect(), this.queue.disconnect()]));
  }
}
