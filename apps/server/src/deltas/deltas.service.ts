import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Subscription } from 'rxjs';
import { DeltaRecord, NotFoundError, Release, deltaKey } from '@ferry/protocol';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { LeaderLease } from '../redis/leader-lease';
import { REDIS } from '../redis/redis.module';
import { ReleaseEvents } from '../releases/release-events';
import { ReleasesService } from '../releases/releases.service';
import { DeltaJobsRepository } from './delta-jobs.repository';
import { planDeltas } from './delta-planner';
import { DeltasRepository } from './deltas.repository';

/** How often queued and building deltas are checked against the queue (Redis may have lost them). */
const RECONCILE_EVERY_MS = 15_000;

/**
 * Plans, enqueues and records layer deltas. Workers only compute; this service writes every result to
 * the database, from queue events and from a periodic reconciliation that also re-enqueues jobs a
 * Redis restart lost.
 */
@Injectable()
export class DeltasService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DeltasService.name);
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  /** One replica at a time reconciles (it may re-enqueue lost jobs). */
  private readonly reconcileLease: LeaderLease;

  constructor(
    private readonly deltas: DeltasRepository,
    private readonly jobs: DeltaJobsRepository,
    private readonly releases: ReleasesService,
    private readonly releaseEvents: ReleaseEvents,
    @Inject(REDIS) redis: Redis,
    @Inject(FERRY_CONFIG) config: FerryConfig,
  ) {
    this.reconcileLease = new LeaderLease(redis, `${config.redisPrefix}deltas:reconcile:lease`, 30_000);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.jobs.onActive(
      (key) => void this.deltas.update(key, { state: 'building' }).catch((e: Error) => this.warn(key, e)),
    );
    this.jobs.onCompleted((key) => void this.settle(key).catch((e: Error) => this.warn(key, e)));
    this.jobs.onFailed((key) => void this.settle(key).catch((e: Error) => this.warn(key, e)));
    this.subscription = this.releaseEvents.pushed$.subscribe((release) => {
      this.planForPushedRelease(release).catch((e: Error) =>
        this.logger.warn(`planning deltas for release ${release.id}: ${e.message}`),
      );
    });
    await this.jobs.waitUntilReady();
    await this.reconcileLease.run(() => this.reconcile());
    this.timer = setInterval(
      () =>
        void this.reconcileLease
          .run(() => this.reconcile())
          .catch((e: Error) => {
            // While Redis is away the outage line says so once; reconciliation catches up after it.
            if (!this.jobs.redisAway) this.logger.warn(`reconcile: ${e.message}`);
          }),
      RECONCILE_EVERY_MS,
    );
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
    clearInterval(this.timer);
  }

  /**
   * Eager planning: when a release is pushed, build the deltas from every release that devices of the
   * fleet run now, before any device asks.
   */
  async planForPushedRelease(release: Release): Promise<DeltaRecord[]> {
    const running = await this.deltas.releasesRunningIn(release.fleetId);
    const out: DeltaRecord[] = [];
    for (const id of running) {
      if (id === release.id) continue;
      const from = await this.releases.get(id).catch(() => null);
      if (from) out.push(...(await this.planBetween(from, release)));
    }
    return out;
  }

  /** Enqueues every delta a device on `from` needs for `to`; returns their records. */
  async planBetween(from: Release, to: Release): Promise<DeltaRecord[]> {
    const records: DeltaRecord[] = [];
    for (const planned of planDeltas(from, to)) {
      records.push(await this.request(planned.bases, planned.target));
    }
    return records;
  }

  /** The delta of `target` against `bases`, enqueued if it is not built yet (on demand). */
  async request(
    bases: string[],
    target: { diffId: string; size: number; gzipSize: number },
  ): Promise<DeltaRecord> {
    const key = deltaKey(bases, target.diffId);
    const { record, created } = await this.deltas.ensure({
      key,
      bases,
      target: target.diffId,
      targetSize: target.size,
      targetGzipSize: target.gzipSize,
    });
    if (created) {
      await this.jobs.enqueue({ key, bases, target: target.diffId, targetGzipSize: target.gzipSize });
    } else if (record.state === 'failed') {
      // Asked for again after a final failure: try once more from scratch.
      await this.jobs.remove(key);
      await this.deltas.update(key, { state: 'queued', error: null });
      await this.jobs.enqueue({ key, bases, target: target.diffId, targetGzipSize: target.gzipSize });
      return { ...record, state: 'queued', error: null };
    }
    return record;
  }

  async listForRelease(releaseId: string): Promise<DeltaRecord[]> {
    const release = await this.releases.get(releaseId);
    return this.deltas.forTargets(release.services.flatMap((s) => s.layers.map((l) => l.diffId)));
  }

  /** Every delta record whose target is one of these layers. */
  async forTargets(targets: string[]): Promise<DeltaRecord[]> {
    return this.deltas.forTargets(targets);
  }

  async get(key: string): Promise<DeltaRecord> {
    const record = await this.deltas.find(key);
    if (!record) throw new NotFoundError(`no delta ${key}`);
    return record;
  }

  /** Reads a job's outcome from the queue into the database. */
  async settle(key: string): Promise<void> {
    const job = await this.jobs.state(key);
    switch (job.state) {
      case 'completed':
        if (job.result.kind === 'delta') {
          await this.deltas.update(key, {
            state: 'ready',
            digest: job.result.digest,
            size: job.result.size,
            encodeMs: job.result.encodeMs,
            error: null,
          });
        } else {
          await this.deltas.update(key, {
            state: 'full',
            size: job.result.deltaSize,
            encodeMs: job.result.encodeMs,
            error: null,
          });
        }
        return;
      case 'failed':
        await this.deltas.update(key, { state: 'failed', error: job.reason });
        return;
      case 'missing': {
        const record = await this.deltas.find(key);
        if (record && (record.state === 'queued' || record.state === 'building')) {
          this.logger.warn(`delta ${key} was lost from the queue; enqueueing it again`);
          await this.jobs.enqueue({
            key,
            bases: record.bases,
            target: record.target,
            targetGzipSize: record.targetGzipSize,
          });
        }
        return;
      }
      case 'active':
        await this.deltas.update(key, { state: 'building' });
        return;
      case 'waiting':
      case 'delayed':
      case 'prioritized':
      case 'waiting-children':
        return;
    }
  }

  /** Settles every unfinished record against the queue. */
  async reconcile(): Promise<void> {
    await this.jobs.registerOwner();
    for (const record of await this.deltas.inStates(['queued', 'building'])) await this.settle(record.key);
  }

  private warn(key: string, error: Error): void {
    this.logger.warn(`delta ${key}: ${error.message}`);
  }
}
