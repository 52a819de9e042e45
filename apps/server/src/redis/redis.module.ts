import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RedisOutageMonitor, RedisUnreachableError, connectRedis } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';

/** Injection token of the shared ioredis connection (health checks, rate data, pub/sub users make their own). */
export const REDIS = Symbol('REDIS');

/**
 * Injection token of the process's {@link RedisOutageMonitor}: every Redis client of the server (this
 * module's, the event bus subscriber, the broker's, the delta queue's) sends its errors there, and
 * code that fails because Redis is away asks it whether the outage line already said so.
 */
export const REDIS_MONITOR = Symbol('REDIS_MONITOR');

/** How to get Redis, printed when it cannot be reached at start. */
export const REDIS_HELP =
  'Ferry needs Redis for its job queues. Start one on this machine with ' +
  '"apt-get install -y redis-server && redis-server --daemonize yes --save \'\' --appendonly no" ' +
  '(or "docker run -d -p 6379:6379 redis:7"), or point REDIS_URL at yours.';

/** Closes a Redis client: QUIT when Redis answers, at once when it is away (QUIT would wait for it). */
export async function closeRedis(redis: Redis, monitor: RedisOutageMonitor): Promise<void> {
  if (monitor.down || redis.status !== 'ready') {
    redis.disconnect();
    return;
  }
  await redis.quit().catch(() => redis.disconnect());
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS_MONITOR,
      inject: [FERRY_CONFIG],
      useFactory: (config: FerryConfig) => new RedisOutageMonitor(config.redis, new Logger('Redis')),
    },
    {
      provide: REDIS,
      inject: [FERRY_CONFIG, REDIS_MONITOR],
      useFactory: async (config: FerryConfig, monitor: RedisOutageMonitor): Promise<Redis> => {
        const redis = connectRedis(config.redis, {
          lazyConnect: true,
          maxRetriesPerRequest: 2,
          connectTimeout: 3000,
        });
        monitor.watch(redis);
        try {
          await redis.connect();
          await redis.ping();
        } catch (error) {
          redis.disconnect();
          throw new RedisUnreachableError(config.redis, `${(error as Error).message}. ${REDIS_HELP}`);
        }
        return redis;
      },
    },
  ],
  exports: [REDIS, REDIS_MONITOR],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_MONITOR) private readonly monitor: RedisOutageMonitor,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await closeRedis(this.redis, this.monitor);
    this.monitor.close();
  }
}
