import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { VolumePurge, VolumePurgeState } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, VolumePurgeTable } from '../database/database.types';

function toPurge(row: Selectable<VolumePurgeTable>): VolumePurge {
  return {
    uuid: row.device_uuid,
    volume: row.volume,
    state: row.state as VolumePurgeState,
    requestedAt: row.requested_at,
    requestedBy: row.requested_by,
    doneAt: row.done_at,
    error: row.error,
  };
}

/** Volume purge requests, one per device and volume (the newest request replaces an older one). */
@Injectable()
export class VolumePurgesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Stores a pending request, replacing whatever was there for the same device and volume. */
  async request(uuid: string, volume: string, by: string, at: string): Promise<VolumePurge> {
    const row = {
      device_uuid: uuid,
      volume,
      state: 'pending',
      requested_at: at,
      requested_by: by,
      done_at: null,
      error: null,
    };
    await this.db
      .insertInto('volume_purges')
      .values(row)
      .onConflict((c) =>
        c.columns(['device_uuid', 'volume']).doUpdateSet({
          state: 'pending',
          requested_at: at,
          requested_by: by,
          done_at: null,
          error: null,
        }),
      )
      .execute();
    return toPurge(row);
  }

  async list(uuid: string): Promise<VolumePurge[]> {
    const rows = await this.db
      .selectFrom('volume_purges')
      .selectAll()
      .where('device_uuid', '=', uuid)
      .orderBy('requested_at', 'desc')
      .orderBy('volume')
      .execute();
    return rows.map(toPurge);
  }

  async pending(uuid: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('volume_purges')
      .select('volume')
      .where('device_uuid', '=', uuid)
      .where('state', '=', 'pending')
      .orderBy('volume')
      .execute();
    return rows.map((r) => r.volume);
  }

  /** Ends a pending request; false when there was none (answered already, or never asked). */
  async finish(
    uuid: string,
    volume: string,
    state: 'purged' | 'refused',
    at: string,
    error: string | null,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('volume_purges')
      .set({ state, done_at: at, error })
      .where('device_uuid', '=', uuid)
      .where('volume', '=', volume)
      .where('state', '=', 'pending')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}
