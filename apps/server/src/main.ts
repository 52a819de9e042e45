import 'reflect-metadata';
import {
  EXIT_SERVICE_UNAVAILABLE,
  RedisUnreachableError,
  exitAfterShutdownGrace,
  pingRedis,
} from '@ferry/storage';
import { ConfigError, loadServerConfig } from './config/config';
import { REDIS_HELP } from './redis/redis.module';
import { createServer } from './server.factory';

async function main(): Promise<void> {
  let config;
  try {
    config = await loadServerConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`ferry server: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  // Before anything connects: one clear line instead of every client's reconnect errors.
  await pingRedis(config.redis);
  exitAfterShutdownGrace('ferry server');
  const app = await createServer(config);
  await app.listen(config.http.port, config.http.host);
  process.stdout.write(
    `Ferry server listening on ${config.http.publicUrl} (API docs at ${config.http.publicUrl}/docs; ` +
      `install ${config.installId}, queue namespace ${config.queuePrefix}, Redis keys ${config.redisPrefix}*)\n`,
  );
}

main().catch((error: unknown) => {
  if (error instanceof RedisUnreachableError) {
    process.stderr.write(`ferry server: ${error.message}. ${REDIS_HELP}\n`);
    process.exit(EXIT_SERVICE_UNAVAILABLE);
  }
  process.stderr.write(
    `ferry server failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
