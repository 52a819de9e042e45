import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Type } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { Kysely } from 'kysely';
import { Release } from '@ferry/protocol';
import { Clock, FakeClock } from '../../apps/server/src/clock/clock';
import { ClockModule } from '../../apps/server/src/clock/clock.module';
import { FerryConfig, loadServerConfig } from '../../apps/server/src/config/config';
import { testQueuePrefix, testRedisPrefix } from './redis-keys';
import { ConfigModule } from '../../apps/server/src/config/config.module';
import { DATABASE, DatabaseModule } from '../../apps/server/src/database/database.module';
import { Database } from '../../apps/server/src/database/database.types';
import { DevicesService } from '../../apps/server/src/devices/devices.service';
import { EventBusModule } from '../../apps/server/src/events/event-bus.module';
import { FleetsModule } from '../../apps/server/src/fleets/fleets.module';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { ReleasesService } from '../../apps/server/src/releases/releases.service';
import { LimitsModule } from '../../apps/server/src/limits/limits.module';
import { RedisModule } from '../../apps/server/src/redis/redis.module';
import { dockerArchive, gnuTarLayer } from './hostile-archives';
import { freshPostgresDatabase } from './postgres';
import { DatabaseKind } from './test-server';

/**
 * A medium test's world: only the Nest modules a part needs, on a real database (a fresh SQLite file
 * or PostgreSQL database), real Redis (own key prefix, removed at the end) and a {@link FakeClock}.
 * No HTTP server: the test calls the services, so a failure names the part.
 */
export interface Medium {
  module: TestingModule;
  config: FerryConfig;
  clock: FakeClock;
  db: Kysely<Database>;
  get<T>(type: Type<T>): T;
  close(): Promise<void>;
}

export interface MediumOptions {
  env?: Record<string, string>;
  /** Providers replaced by a value: a part's own timers (the rollout ticker) when the test drives it. */
  replace?: [Type, unknown][];
}

export async function startMedium(
  kind: DatabaseKind,
  imports: Type[],
  options: MediumOptions = {},
): Promise<Medium> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-medium-'));
  const postgres = kind === 'postgres' ? await freshPostgresDatabase() : null;
  const config = await loadServerConfig({
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    MQTT_PORT: '0',
    REDIS_PREFIX: testRedisPrefix(),
    FERRY_QUEUE_PREFIX: testQueuePrefix('medium'),
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...(postgres ? { DATABASE_URL: postgres.url } : {}),
    ...options.env,
  });
  const clock = new FakeClock();
  const builder = Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(config),
      ClockModule,
      DatabaseModule,
      RedisModule,
      LimitsModule,
      EventBusModule,
      FleetsModule,
      ...imports,
    ],
  })
    .overrideProvider(Clock)
    .useValue(clock)
    .setLogger({ log() {}, error() {}, warn() {}, debug() {}, verbose() {}, fatal() {} });
  for (const [type, value] of options.replace ?? []) builder.overrideProvider(type).useValue(value);
  const module = await builder.compile();
  await module.init();
  return {
    module,
    config,
    clock,
    db: module.get<Kysely<Database>>(DATABASE),
    get: <T>(type: Type<T>) => module.get(type, { strict: false }),
    close: async () => {
      await module.close();
      await postgres?.drop();
      rmSync(dataDir, { recursive: true, force: true });
      const redis = new Redis(config.redisUrl);
      for (const pattern of [`${config.redisPrefix}*`, `${config.queuePrefix}:*`]) {
        const keys = await redis.keys(pattern);
        if (keys.length > 0) await redis.del(...keys);
      }
      redis.disconnect();
    },
  };
}

/** Pushes a release of one layer holding `files` (a docker-archive made with GNU tar). */
export async function pushRelease(
  m: Medium,
  fleet: string,
  version: number,
  files: Record<string, string>,
): Promise<Release> {
  const work = mkdtempSync(join(tmpdir(), 'ferry-medium-layer-'));
  try {
    const archive = await dockerArchive([gnuTarLayer(work, files)], { repoTag: 'app:1' });
    return await m.get(ReleasesService).push(fleet, Readable.from([archive]), { version });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Registers `count` devices (`d1`, `d2`, …) with a new provisioning key of the fleet, one clock second
 * apart so that "oldest first" is registration order; their UUIDs and keys in that order.
 */
export async function registerDevices(
  m: Medium,
  fleet: string,
  count: number,
): Promise<{ uuid: string; apiKey: string }[]> {
  const { key } = await m.get(FleetsService).createKey(fleet);
  const registered: { uuid: string; apiKey: string }[] = [];
  for (let i = 0; i < count; i += 1) {
    const { device } = await m
      .get(DevicesService)
      .register({ provisioningKey: key, name: `d${i + 1}` }, '127.0.0.1');
    registered.push({ uuid: device.uuid, apiKey: device.apiKey });
    m.clock.advance(1000);
  }
  return registered;
}
