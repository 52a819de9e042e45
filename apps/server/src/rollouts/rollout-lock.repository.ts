import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RedisOutageMonitor } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { LeaderLease } from '../redis/leader-lease';
import { REDIS, REDIS_MONITOR } from '../redis/redis.module';

/**
 * The rollout leader's Redis lease: with several server replicas, one process at a time steps rollouts
 * and sends their notices (the ticker's passes and the steps API requests trigger). It is renewed while
 * a pass runs, and taken over by another replica once a dead leader's TTL (five ticks, at least 10 s)
 * has run out. Every state lives in the database, so a lost lease only delays the next step.
 */
@Injectable()
export class RolloutLockRepository {
  private readonly lease: LeaderLease;

  constructor(
    @Inject(REDIS) redis: Redis,
    @Inject(FERRY_CONFIG) config: FerryConfig,
    @Inject(REDIS_MONITOR) private readonly monitor: RedisOutageMonitor,
  ) {
    this.lease = new LeaderLease(
      redis,
      `${config.redisPrefix}rollouts:lease`,
      Math.max(10_000, config.rolloutTickMs * 5),
    );
  }

  /** Redis is known to be away (its outage was logged once): no lease can be had until it is back. */
  get redisAway(): boolean {
    return this.monitor.down;
  }

  /** Runs `fn` as the rollout leader, or returns undefined without running it when another process leads. */
  run<T>(fn: (held: () => boolean) => Promise<T>): Promise<T | undefined> {
    return this.lease.run(fn);
  }
}
