import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Updateable } from 'kysely';
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

  /** Applies every write in one transaction; returns the number of rows written. */
  async write(writes: DeviceStateWrite[]): Promise<number> {
    if (writes.length === 0) return 0;
    return this.db.transaction().execute(async (trx) => {
      let written = 0;
      for (const w of writes) {
        const set: Updateable<DeviceTable> = {};
        if (w.state) {
          set.status = w.state.status;
          set.update_release_id = w.state.releaseId;
          set.bytes_done = w.state.bytesDone;
          set.bytes_total = w.state.bytesTotal;
          set.last_error = w.state.error;
          set.state_at = w.state.at;
          if (w.state.runningReleaseId) set.release_id = w.state.runningReleaseId;
        }
        if (w.online !== undefined) set.online = w.online ? 1 : 0;
        if (w.lastSeenAt !== undefined) set.last_seen_at = w.lastSeenAt;
        if (Object.keys(set).length === 0) continue;
        const result = await trx
          .updateTable('devices')
          .set(set)
          .where('uuid', '=', w.uuid)
          .executeTakeFirst();
        written += Number(result.numUpdatedRows);
      }
      return written;
    });
  }
}
