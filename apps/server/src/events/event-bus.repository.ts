import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { FerryEvent } from '@ferry/protocol';
import { RedisOutageMonitor } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { REDIS, REDIS_MONITOR, closeRedis } from '../redis/redis.module';

/** One Redis message: a batch of events and the process that published it. */
export interface EventBatch {
  origin: string;
  events: FerryEvent[];
}

/**
 * Carries event batches between server processes over Redis pub/sub (channel `{REDIS_PREFIX}events`).
 * Publishes on the shared connection; subscribing needs a connection of its own.
 */
@Injectable()
export class EventBusRepository implements OnApplicationShutdown {
  private readonly channel: string;
  private subscriber: Redis | null = null;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(FERRY_CONFIG) config: FerryConfig,
    @Inject(REDIS_MONITOR) private readonly monitor: RedisOutageMonitor,
  ) {
    this.channel = `${config.redisPrefix}events`;
  }

  /** Redis is known to be away (its outage was logged once). */
  get redisAway(): boolean {
    return this.monitor.down;
  }

  async publish(batch: EventBatch): Promise<void> {
    await this.redis.publish(this.channel, JSON.stringify(batch));
  }

  /** Calls `onBatch` with every batch any process publishes (this one's included). */
  async subscribe(onBatch: (raw: string) => void): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.monitor.watch(subscriber);
    subscriber.on('message', (_channel: string, message: string) => onBatch(message));
    await subscriber.subscribe(this.channel);
    this.subscriber = subscriber;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.subscriber) await closeRedis(this.subscriber, this.monitor);
  }
}
