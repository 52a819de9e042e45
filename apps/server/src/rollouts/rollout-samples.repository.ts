import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Transaction } from 'kysely';
import { DeviceCounts } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

/** A rollout's device counts over time (`rollout_samples`): its chart. */
@Injectable()
export class RolloutSamplesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Adds a sample in the caller's transaction (the one that changed the counts). */
  async add(rolloutId: string, at: string, counts: DeviceCounts, trx: Transaction<Database>): Promise<void> {
    await trx
      .insertInto('rollout_samples')
      .values({ rollout_id: rolloutId, at, counts: JSON.stringify(counts) })
      .execute();
  }

  /** The last `limit` samples, oldest first. */
  async latest(rolloutId: string, limit: number): Promise<{ at: string; counts: DeviceCounts }[]> {
    const rows = await this.db
      .selectFrom('rollout_samples')
      .select(['at', 'counts'])
      .where('rollout_id', '=', rolloutId)
      .orderBy('at', 'desc')
      .limit(limit)
      .execute();
    return rows.reverse().map((r) => ({ at: r.at, counts: JSON.parse(r.counts) as DeviceCounts }));
  }
}
