import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { DeltaRecord, DeltaState } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DATABASE } from '../database/database.module';
import { Database, DeltaTable } from '../database/database.types';

function toRecord(row: Selectable<DeltaTable>): DeltaRecord {
  const size = row.size === null ? null : Number(row.size);
  const gzip = Number(row.target_gzip_size);
  return {
    key: row.key,
    bases: JSON.parse(row.bases) as string[],
    target: row.target_diff_id,
    state: row.state as DeltaState,
    digest: row.digest,
    size,
    targetSize: Number(row.target_size),
    targetGzipSize: gzip,
    savings: size !== null && gzip > 0 && row.state === 'ready' ? 1 - size / gzip : null,
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Delta records: what was asked for, its build state, and the result. */
@Injectable()
export class DeltasRepository {
  constructor(
    @Inject(DATABASE) private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  /** Inserts a queued record unless one with this key exists; returns the record either way. */
  async ensure(record: {
    key: string;
    bases: string[];
    target: string;
    targetSize: number;
    targetGzipSize: number;
  }): Promise<{ record: DeltaRecord; created: boolean }> {
    const now = this.clock.iso();
    const result = await this.db
      .insertInto('deltas')
      .values({
        key: record.key,
        bases: JSON.stringify(record.bases),
        target_diff_id: record.target,
        state: 'queued',
        digest: null,
        size: null,
        target_size: record.targetSize,
        target_gzip_size: record.targetGzipSize,
        encode_ms: null,
        error: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .executeTakeFirst();
    const created = Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
    return { record: (await this.find(record.key)) as DeltaRecord, created };
  }

  /** Releases that devices of a fleet report running (the bases deltas are planned from). */
  async releasesRunningIn(fleetId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('devices')
      .select('release_id')
      .distinct()
      .where('fleet_id', '=', fleetId)
      .where('release_id', 'is not', null)
      .execute();
    return rows.map((r) => r.release_id as string);
  }

  async find(key: string): Promise<DeltaRecord | null> {
    const row = await this.db.selectFrom('deltas').selectAll().where('key', '=', key).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async forTargets(targets: string[]): Promise<DeltaRecord[]> {
    if (targets.length === 0) return [];
    const rows = await this.db
      .selectFrom('deltas')
      .selectAll()
      .where('target_diff_id', 'in', targets)
      .orderBy('created_at')
      .execute();
    return rows.map(toRecord);
  }

  async inStates(states: DeltaState[]): Promise<DeltaRecord[]> {
    const rows = await this.db.selectFrom('deltas').selectAll().where('state', 'in', states).execute();
    return rows.map(toRecord);
  }

  /** Moves a record to a new state; a finished record (ready/full) is never moved back. */
  async update(
    key: string,
    change: {
      state: DeltaState;
      digest?: string | null;
      size?: number | null;
      encodeMs?: number | null;
      error?: string | null;
    },
  ): Promise<void> {
    let query = this.db
      .updateTable('deltas')
      .set({
        state: change.state,
        ...(change.digest !== undefined ? { digest: change.digest } : {}),
        ...(change.size !== undefined ? { size: change.size } : {}),
        ...(change.encodeMs !== undefined ? { encode_ms: change.encodeMs } : {}),
        ...(change.error !== undefined ? { error: change.error } : {}),
        updated_at: this.clock.iso(),
      })
      .where('key', '=', key);
    if (change.state !== 'ready' && change.state !== 'full')
      query = query.where('state', 'not in', ['ready', 'full']);
    await query.execute();
  }
}
