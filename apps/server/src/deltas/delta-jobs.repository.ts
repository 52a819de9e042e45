import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { Job, Queue, QueueEvents } from 'bullmq';
import { DeltaJobData, DeltaJobName, DeltaJobResult, DeltaJobResultSchema, QueueName } from '@ferry/protocol';
import { FERRY_CONFIG } from '../config/config.module';
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

  constructor(@Inject(FERRY_CONFIG) config: FerryConfig) {
    const connection = { url: config.redisUrl, maxRetriesPerRequest: null };
    this.queue = new Queue(QueueName.Deltas, { connection, prefix: config.queuePrefix });
    this.events = new QueueEvents(QueueName.Deltas, { connection, prefix: config.queuePrefix });
  }

  async enqueue(data: DeltaJobData): Promise<void> {
    await this.queue.add(DeltaJobName.Build, data, {
      jobId: data.key,
      attempts: 3,
      backoff: { type: 'exponential', delay: 5000 },
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
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

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.events.close(), this.queue.close()]);
  }
}
