import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Expression, ExpressionBuilder, Kysely, Selectable, SqlBool, Transaction, sql } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database, VariableTable } from '../database/database.types';
import { DevicesRepository } from '../devices/devices.repository';

/** Where a variable is set: a fleet or one of its devices, for every service or one. */
export interface VariableScope {
  fleetId: string;
  deviceUuid: string | null;
  service: string | null;
}

/** One stored variable, its value in clear (the service decides who sees it). */
export interface StoredVariable {
  name: string;
  value: string;
  secret: boolean;
  deviceUuid: string | null;
  service: string | null;
  updatedAt: string;
}

/** Every variable that concerns a device, read together with the version they make. */
export interface VariableSnapshot {
  fleetRevision: number;
  deviceRevision: number;
  variables: StoredVariable[];
}

function toVariable(row: Selectable<VariableTable>): StoredVariable {
  return {
    name: row.name,
    value: row.value,
    secret: row.secret === 1,
    deviceUuid: row.device_uuid,
    service: row.service,
    updatedAt: row.updated_at,
  };
}

/**
 * Configuration variables (`variables`) and the revisions that version them
 * (`fleets.variables_revision`, `devices.variables_revision`). A change and its revision bump are one
 * transaction; the bump comes first, so it also locks the scope's fleet or device row and concurrent
 * changes of one scope take turns (PostgreSQL; SQLite writes take turns anyway).
 */
@Injectable()
export class VariablesRepository {
  constructor(
    @Inject(DATABASE) private readonly db: Kysely<Database>,
    private readonly devices: DevicesRepository,
  ) {}

  /** The fleet's own variables (fleet and fleet+service levels), and the device's when one is named. */
  async list(fleetId: string, deviceUuid: string | null): Promise<StoredVariable[]> {
    return this.listIn(this.db, fleetId, deviceUuid);
  }

  /** Everything a device's variables are made of, read in one transaction with their revisions. */
  async snapshot(fleetId: string, deviceUuid: string): Promise<VariableSnapshot> {
    return this.db.transaction().execute(async (trx) => {
      const fleet = await trx
        .selectFrom('fleets')
        .select('variables_revision')
        .where('id', '=', fleetId)
        .executeTakeFirst();
      const device = await trx
        .selectFrom('devices')
        .select('variables_revision')
        .where('uuid', '=', deviceUuid)
        .executeTakeFirst();
      return {
        fleetRevision: Number(fleet?.variables_revision ?? 0),
        deviceRevision: Number(device?.variables_revision ?? 0),
        variables: await this.listIn(trx, fleetId, deviceUuid),
      };
    });
  }

  /** The fleet's revision, and with `withDevices` each of its devices' own (notices after a fleet change). */
  async revisions(
    fleetId: string,
    withDevices: boolean,
  ): Promise<{ fleet: number; devices: { uuid: string; revision: number }[] }> {
    const fleet = await this.db
      .selectFrom('fleets')
      .select('variables_revision')
      .where('id', '=', fleetId)
      .executeTakeFirst();
    if (!withDevices) return { fleet: Number(fleet?.variables_revision ?? 0), devices: [] };
    const devices = await this.db
      .selectFrom('devices')
      .select(['uuid', 'variables_revision'])
      .where('fleet_id', '=', fleetId)
      .orderBy('uuid')
      .execute();
    return {
      fleet: Number(fleet?.variables_revision ?? 0),
      devices: devices.map((d) => ({ uuid: d.uuid, revision: Number(d.variables_revision) })),
    };
  }

  /**
   * Sets a variable (inserts or replaces its value); `secret` undefined keeps an existing variable's
   * flag. Returns null, writing nothing, when the scope already holds `maxPerScope` other variables.
   */
  async set(
    scope: VariableScope,
    name: string,
    value: string,
    secret: boolean | undefined,
    at: string,
    maxPerScope: number,
  ): Promise<{ variable: StoredVariable; created: boolean } | null> {
    const change = this.db.transaction().execute(async (trx) => {
      await this.bumpRevision(trx, scope);
      const existing = await trx
        .selectFrom('variables')
        .selectAll()
        .where((eb) => inScope(eb, scope))
        .where('name', '=', name)
        .executeTakeFirst();
      if (existing) {
        const flag = secret === undefined ? existing.secret : secret ? 1 : 0;
        await trx
          .updateTable('variables')
          .set({ value, secret: flag, updated_at: at })
          .where('id', '=', existing.id)
          .execute();
        return { variable: toVariable({ ...existing, value, secret: flag, updated_at: at }), created: false };
      }
      const count = await trx
        .selectFrom('variables')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where((eb) => inScope(eb, scope))
        .executeTakeFirstOrThrow();
      if (Number(count.n) >= maxPerScope) {
        // Nothing of this transaction may stay: the revision bump goes with it.
        throw new ScopeFullError();
      }
      const row = {
        id: randomUUID(),
        fleet_id: scope.fleetId,
        device_uuid: scope.deviceUuid,
        service: scope.service,
        name,
        value,
        secret: secret ? 1 : 0,
        created_at: at,
        updated_at: at,
      };
      await trx.insertInto('variables').values(row).execute();
      return { variable: toVariable(row), created: true };
    });
    return change.catch((error: unknown) => {
      if (error instanceof ScopeFullError) return null;
      throw error;
    });
  }

  /** Deletes a variable; false (and no revision bump) when the scope has no such name. */
  async remove(scope: VariableScope, name: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .deleteFrom('variables')
        .where((eb) => inScope(eb, scope))
        .where('name', '=', name)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) return false;
      await this.bumpRevision(trx, scope);
      return true;
    });
  }

  private async listIn(
    db: Kysely<Database> | Transaction<Database>,
    fleetId: string,
    deviceUuid: string | null,
  ): Promise<StoredVariable[]> {
    const rows = await db
      .selectFrom('variables')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .where((eb) =>
        deviceUuid === null
          ? eb('device_uuid', 'is', null)
          : eb.or([eb('device_uuid', 'is', null), eb('device_uuid', '=', deviceUuid)]),
      )
      .orderBy('name')
      .orderBy('id')
      .execute();
    return rows.map(toVariable);
  }

  private async bumpRevision(trx: Transaction<Database>, scope: VariableScope): Promise<void> {
    if (scope.deviceUuid === null)
      await trx
        .updateTable('fleets')
        .set({ variables_revision: sql<number>`variables_revision + 1` })
        .where('id', '=', scope.fleetId)
        .execute();
    else await this.devices.bumpVariablesRevision(scope.deviceUuid, trx);
  }
}

/** The rows of one scope (nulls compared as nulls). */
function inScope(eb: ExpressionBuilder<Database, 'variables'>, scope: VariableScope): Expression<SqlBool> {
  return eb.and([
    eb('fleet_id', '=', scope.fleetId),
    scope.deviceUuid === null ? eb('device_uuid', 'is', null) : eb('device_uuid', '=', scope.deviceUuid),
    scope.service === null ? eb('service', 'is', null) : eb('service', '=', scope.service),
  ]);
}

/** Thrown inside {@link VariablesRepository.set}'s transaction to undo it when the scope is full. */
export class ScopeFullError extends Error {
  constructor() {
    super('the scope holds the most variables it may');
    this.name = 'ScopeFullError';
  }
}
