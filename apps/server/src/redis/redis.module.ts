import { Global, Inject, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';

/** Injection token of the shared ioredis connection (health checks, rate data, pub/sub users make their own). */
export const REDIS = Symbol('REDIS');

/** How to get Redis, printed when it cannot be reached at start. */
export const REDIS_HELP =
  'Ferry needs Redis for its job queues. Start one on this machine with ' +
  '"apt-get install -y redis-server && redis-server --daemonize yes --save \'\' --appendonly no" ' +
  '(or "docker run -d -p 6379:6379 redis:7"), or point REDIS_URL at yours.';

@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [FERRY_CONFIG],
      useFactory: async (config: FerryConfig): Promise<Redis> => {
        const redis = new Redis(config.redisUrl, {
          lazyConnect: true,
          maxRetriesPerRequest: 2,
          connectTimeout: 3000,
        });
        redis.on('error', (error: Error) => new Logger('Redis').warn(`Redis: ${error.message}`));
        try {
          await redis.connect();
          await redis.ping();
        } catch (error) {
          redis.disconnect();
          throw new Error(
            `Redis is not reachable at ${config.redisUrl} (REDIS_URL): ${(error as Error).message}. ${REDIS_HELP}`,
          );
        }
        return redis;
      },
    },
  ],
  exports: [REDIS],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
