import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { UpdatePolicyEntry, UpdatePolicyScope, UpdatePolicySettings } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, UpdatePolicyTable } from '../database/database.types';

function scopeColumns(scope: UpdatePolicyScope): { scope: UpdatePolicyTable['scope']; scope_key: string } {
  if (scope.kind === 'tag') return { scope: 'tag', scope_key: `${scope.tag}=${scope.value}` };
  if (scope.kind === 'device') return { scope: 'device', scope_key: scope.uuid };
  return { scope: 'fleet', scope_key: '' };
}

function scopeOf(row: Selectable<UpdatePolicyTable>): UpdatePolicyScope {
  if (row.scope === 'tag') {
    const at = row.scope_key.indexOf('=');
    return { kind: 'tag', tag: row.scope_key.slice(0, at), value: row.scope_key.slice(at + 1) };
  }
  if (row.scope === 'device') return { kind: 'device', uuid: row.scope_key };
  return { kind: 'fleet' };
}

const windowsOf = (text: string | null): string[] | null =>
  text === null ? null : (JSON.parse(text) as string[]);

/** Fleets' update policies (`update_policies`): one row per fleet, tag value or device that sets one. */
@Injectable()
export class UpdatePoliciesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async list(fleetId: string): Promise<UpdatePolicyEntry[]> {
    const rows = await this.db
      .selectFrom('update_policies')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .orderBy('scope')
      .orderBy('scope_key')
      .execute();
    return rows.map((row) => ({
      scope: scopeOf(row),
      maintenanceWindows: windowsOf(row.maintenance_windows),
      downloadWindows: windowsOf(row.download_windows),
      downloadRate: row.download_rate === null ? null : Number(row.download_rate),
      updatedAt: row.updated_at,
    }));
  }

  /** Replaces what one level sets. */
  async save(
    fleetId: string,
    scope: UpdatePolicyScope,
    settings: UpdatePolicySettings,
    at: string,
  ): Promise<void> {
    const values = {
      maintenance_windows:
        settings.maintenanceWindows === null ? null : JSON.stringify(settings.maintenanceWindows),
      download_windows: settings.downloadWindows === null ? null : JSON.stringify(settings.downloadWindows),
      download_rate: settings.downloadRate,
      updated_at: at,
    };
    await this.db
      .insertInto('update_policies')
      .values({ fleet_id: fleetId, ...scopeColumns(scope), ...values })
      .onConflict((oc) => oc.columns(['fleet_id', 'scope', 'scope_key']).doUpdateSet(values))
      .execute();
  }

  /** Removes what one level sets; whether there was anything. */
  async remove(fleetId: string, scope: UpdatePolicyScope): Promise<boolean> {
    const { scope: kind, scope_key } = scopeColumns(scope);
    const result = await this.db
      .deleteFrom('update_policies')
      .where('fleet_id', '=', fleetId)
      .where('scope', '=', kind)
      .where('scope_key', '=', scope_key)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
