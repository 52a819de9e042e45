import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { REDIS } from '../redis/redis.module';

/** Deletes the key only while it still holds our token (another process may own it after expiry). */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A short Redis lease so that, with several server replicas, one process at a time moves rollouts on.
 * Every state lives in the database, so a lease lost to a crash only delays the next step.
 */
@Injectable()
export class RolloutLockRepository {
  private readonly key: string;
  private readonly token = randomUUID();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(FERRY_CONFIG) config: FerryConfig,
  ) {
    this.key = `${config.redisPrefix}rollouts:lease`;
  }

  async acquire(ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.key, this.token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }
}
