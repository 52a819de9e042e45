import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Transaction, UpdateObject, sql } from 'kysely';
import type { AppMetrics, ServiceState } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';
import { HealthBaseline, HealthEventCounts, presenceHealthEvents, reportHealthEvents } from './health-events';

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
    /** The configuration variables version the device runs, when the report says. */
    variablesVersion?: number;
    /** Per-service states, when the report carries them. */
    services?: ServiceState[];
    /** App metric counters, when the report carries them. */
    metrics?: AppMetrics;
    at: string;
  };
  online?: boolean;
  lastSeenAt?: string;
}

/**
 * Writes what devices report (status, progress, presence) into their rows, many devices per
 * transaction. The devices feature owns the `devices` table: ingestion reaches this through
 * {@link DevicesService}.
 */
@Injectable()
export class DeviceReportsRepository {
  constructor(
    @Inject(DATABASE) private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  /** Deletes health events before `before` (ISO time); returns how many. */
  async pruneHealthEvents(before: string): Promise<number> {
    const result = await this.db
      .deleteFrom('device_health_events')
      .where('at', '<', before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

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
   * What a write adds to a device's health counts (restarts, offline transitions…) is recorded in
   * `device_health_events` in the same transaction, against the row as it was before.
   */
  async write(writes: DeviceStateWrite[]): Promise<number> {
    if (writes.length === 0) return 0;
    return this.db.transaction().execute(async (trx) => {
      const baselines = await this.healthBaselines(
        trx,
        writes.filter((w) => w.online === false || w.state?.services || w.state?.metrics || w.state?.error),
      );
      const events: { device_uuid: string; at: string; kind: string; count: number }[] = [];
      const record = (uuid: string, at: string, counts: HealthEventCounts): void => {
        for (const [kind, count] of Object.entries(counts))
          if (count) events.push({ device_uuid: uuid, at, kind, count });
      };
      let written = 0;
      for (const w of writes) {
        let touched = false;
        if (w.state) {
          const set: UpdateObject<Database, 'devices'> = {
            status: w.state.status,
            update_release_id: w.state.releaseId,
            bytes_done: w.state.bytesDone,
            bytes_total: w.state.bytesTotal,
            last_error: w.state.error,
            state_at: w.state.at,
            report_count: sql<number>`report_count + 1`,
          };
          if (w.state.runningReleaseId) set.release_id = w.state.runningReleaseId;
          if (w.state.variablesVersion !== undefined) set.variables_version = w.state.variablesVersion;
          if (w.state.services) set.services = JSON.stringify(w.state.services);
          if (w.state.metrics) set.metrics = JSON.stringify(w.state.metrics);
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
          if (touched) record(w.uuid, at, reportHealthEvents(baselines.get(w.uuid) ?? null, w.state));
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
          const updated = Number(result.numUpdatedRows) > 0;
          if (updated && w.online !== undefined)
            record(
              w.uuid,
              seen ?? w.state?.at ?? this.clock.iso(),
              presenceHealthEvents(baselines.get(w.uuid) ?? null, w.online),
            );
          touched = touched || updated;
        }
        if (touched) written += 1;
      }
      // Chunks keep the statement under SQLite's and PostgreSQL's parameter limits (4 per row).
      for (let i = 0; i < events.length; i += 200)
        await trx
          .insertInto('device_health_events')
          .values(events.slice(i, i + 200))
          .execute();
      return written;
    });
  }

  /** What these devices' rows say before the writes: the baselines their health counts grow from. */
  private async healthBaselines(
    trx: Transaction<Database>,
    writes: DeviceStateWrite[],
  ): Promise<Map<string, HealthBaseline>> {
    const baselines = new Map<string, HealthBaseline>();
    const uuids = writes.map((w) => w.uuid);
    for (let i = 0; i < uuids.length; i += 500) {
      const rows = await trx
        .selectFrom('devices')
        .select(['uuid', 'services', 'metrics', 'last_error', 'online'])
        .where('uuid', 'in', uuids.slice(i, i + 500))
        .execute();
      for (const row of rows)
        baselines.set(row.uuid, {
          services: row.services ? (JSON.parse(row.services) as ServiceState[]) : null,
          metrics: row.metrics ? (JSON.parse(row.metrics) as AppMetrics) : null,
          error: row.last_error,
          online: Boolean(row.online),
        });
    }
    return baselines;
  }
}
