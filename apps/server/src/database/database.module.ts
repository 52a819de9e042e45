import { Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { Kysely } from 'kysely';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { migrateToLatest, openDatabase } from './database.factory';
import { Database } from './database.types';

/** Injection token of the Kysely instance. Only repositories inject it. */
export const DATABASE = Symbol('DATABASE');

@Global()
@Module({
  providers: [
    {
      provide: DATABASE,
      inject: [FERRY_CONFIG],
      useFactory: async (config: FerryConfig): Promise<Kysely<Database>> => {
        const db = openDatabase(config.database);
        await migrateToLatest(db);
        return db;
      },
    },
  ],
  exports: [DATABASE],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async onApplicationShutdown(): Promise<void> {
    await this.db.destroy();
  }
}
