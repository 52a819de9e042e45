import { Inject, Injectable } from '@nestjs/common';
import { Kysely, UpdateObject, Updateable, sql } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database, DeviceTable } from '../database/database.types';

/** One device's coalesced changes: only the fields that changed since the last flush. */
export interface DeviceStateWrite {
  uuid: string;
  state?: {
    status: string;
    releaseId: string | null;
    bytesDone: number | null;
    bytesTotal: number | null;
    error: string | null;
    /** Set when the report says the release runs now. */
    runningReleaseId?: string;
    at: string;
  };
  online?: boolean;
  lastSeenAt?: string;
}

/** Writes what devices report, many devices per transaction. */
@Injectable()
export class DeviceStateRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** The fleet of each of these devices that exists (unknown UUIDs are left out). */
  async fleetsOf(uuids: string[]): Promise<Map<string, string>> {
    const fleets = new Map<string, string>();
    // Chunks keep the statement under SQLite's and PostgreSQL's parameter limits.
    for (let i = 0; i < uuids.length; i += 500) {
      const rows = await this.db
        .selectFrom('devices')
        .select(['uuid', 'fleet_id'])
        .where('uuid', 'in', uuids.slice(i, i + 500))
        .execute();
      for (const row of rows) fleets.set(row.uuid, row.fleet_id);
    }
    return fleets;
  }

  /**
   * Applies every write in one transaction; returns the number of device rows written. A state older
   * than the one stored is skipped: replicas that split device messages (shared subscriptions) or a
   * device that moved to another process must not overwrite a newer report with a late older one.
   */
  async write(writes: DeviceStateWrite[]): Promise<number> {
    if (writes.length === 0) return 0;
    return this.db.transaction().execute(async (trx) => {
      let written = 0;
      for (const w of writes) {
        let touched = false;
        if (w.state) {
          const set: Updateable<DeviceTable> = {
            status: w.state.status,
            update_release_id: w.state.releaseId,
            bytes_done: w.state.bytesDone,
            bytes_total: w.state.bytesTotal,
            last_error: w.state.error,
            state_at: w.state.at,
          };
          if (w.state.runningReleaseId) set.release_id = w.state.runningReleaseId;
          // One statement in the common case: the report also says when the device was last seen.
          const seenWithState = w.online === undefined && w.lastSeenAt !== undefined;
          if (seenWithState) set.last_seen_at = w.lastSeenAt;
          // ISO-8601 UTC timestamps of one format order as strings, on SQLite and PostgreSQL alike.
          const at = w.state.at;
          const result = await trx
            .updateTable('devices')
            .set(set)
            .where('uuid', '=', w.uuid)
            .where((eb) => eb.or([eb('state_at', 'is', null), eb('state_at', '<=', at)]))
            .executeTakeFirst();
          touched = Number(result.numUpdatedRows) > 0;
          if (touched && seenWithState) {
            written += 1;
            continue;
          }
        }
        const presence: UpdateObject<Database, 'devices'> = {};
        if (w.online !== undefined) presence.online = w.online ? 1 : 0;
        // Last seen only moves forward, whichever report arrives last.
        const seen = w.lastSeenAt;
        if (seen !== undefined)
          presence.last_seen_at = sql<string>`case when last_seen_at is null or last_seen_at < ${seen} then ${seen} else last_seen_at end`;
        if (Object.keys(presence).length > 0) {
          const result = await trx
            .updateTable('devices')
            .set(presence)
            .where('uuid', '=', w.uuid)
            .executeTakeFirst();
          touched = touched || Number(result.numUpdatedRows) > 0;
        }
        if (touched) written += 1;
      }
      return written;
    });
  }
}
