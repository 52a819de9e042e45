import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

/** One stored online key (the private half never leaves the server). */
export interface TargetKeyRecord {
  seq: number;
  keyId: string;
  publicKey: string;
  privateKey: string;
  createdAt: string;
}

/** The server's online keys in the database, shared by every replica. */
@Injectable()
export class TargetKeysRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Every key, newest first. */
  async all(): Promise<TargetKeyRecord[]> {
    const rows = await this.db.selectFrom('target_keys').selectAll().orderBy('seq', 'desc').execute();
    return rows.map((r) => ({
      seq: Number(r.seq),
      keyId: r.key_id,
      publicKey: r.public_key,
      privateKey: r.private_key,
      createdAt: r.created_at,
    }));
  }

  /**
   * Stores a key under `key.seq` unless one is there: two replicas generating the first key, or two
   * rotations at once, leave exactly one. Returns whether this one was stored.
   */
  async insertIfAbsent(key: TargetKeyRecord): Promise<boolean> {
    const result = await this.db
      .insertInto('target_keys')
      .values({
        seq: key.seq,
        key_id: key.keyId,
        public_key: key.publicKey,
        private_key: key.privateKey,
        created_at: key.createdAt,
      })
      .onConflict((oc) => oc.column('seq').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }
}
