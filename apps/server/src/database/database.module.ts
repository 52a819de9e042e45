import { Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { Kysely } from 'kysely';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { migrateToLatest, openDatabase } from './database.factory';
import { Database } from './database.types';
import { DATABASE } from './database.token';
import { TransactionRepository } from './transaction.repository';

export { DATABASE };

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
    TransactionRepository,
  ],
  exports: [DATABASE, TransactionRepository],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async onApplicationShutdown(): Promise<void> {
    await this.db.destroy();
  }
}
