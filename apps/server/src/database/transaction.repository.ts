import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Transaction } from 'kysely';
import { DATABASE } from './database.token';
import { Database } from './database.types';

/**
 * One transaction that several repositories write in: a service that must change two aggregates
 * together (a rollout step and its count sample) runs them in {@link run}, passing `trx` to each
 * repository method as its `db` argument.
 */
@Injectable()
export class TransactionRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  run<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }
}
