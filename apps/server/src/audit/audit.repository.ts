import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { AuditEntry, AuditOutcome } from '@ferry/protocol';
import { DATABASE } from '../database/database.token';
import { AuditEventTable, Database } from '../database/database.types';

function toEntry(row: Selectable<AuditEventTable>): AuditEntry {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    actorKeyId: row.actor_key_id,
    action: row.action,
    method: row.method,
    path: row.path,
    fleetId: row.fleet_id,
    targets: JSON.parse(row.targets) as Record<string, string>,
    source: row.source,
    status: row.status,
    outcome: row.outcome as AuditOutcome,
    error: row.error,
  };
}

export interface AuditFilter {
  /** Only these fleets' entries; null: every entry. */
  fleetIds: string[] | null;
  since?: string;
  actor?: string;
  limit: number;
}

/** The append-only audit log: inserts and reads, nothing else (triggers refuse UPDATE and DELETE). */
@Injectable()
export class AuditRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async append(entry: AuditEntry): Promise<void> {
    await this.db
      .insertInto('audit_events')
      .values({
        id: entry.id,
        at: entry.at,
        actor: entry.actor,
        actor_key_id: entry.actorKeyId,
        action: entry.action,
        method: entry.method,
        path: entry.path,
        fleet_id: entry.fleetId,
        targets: JSON.stringify(entry.targets),
        source: entry.source,
        status: entry.status,
        outcome: entry.outcome,
        error: entry.error,
      })
      .execute();
  }

  /** Entries oldest first. */
  async list(filter: AuditFilter): Promise<AuditEntry[]> {
    let q = this.db.selectFrom('audit_events').selectAll();
    if (filter.fleetIds !== null) {
      if (filter.fleetIds.length === 0) return [];
      q = q.where('fleet_id', 'in', filter.fleetIds);
    }
    if (filter.since) q = q.where('at', '>=', filter.since);
    if (filter.actor) q = q.where('actor', '=', filter.actor);
    const rows = await q.orderBy('at').orderBy('id').limit(filter.limit).execute();
    return rows.map(toEntry);
  }
}
