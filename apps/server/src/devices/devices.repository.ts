import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable, Transaction, sql } from 'kysely';
import { Device, ServiceState } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, DeviceTable } from '../database/database.types';

export interface DeviceRecord extends Device {
  keyHash: string;
}

/** What a device's signed target is built from (docs/protocol.md "Signed targets"). */
export interface DeviceTargetRecord {
  fleetId: string;
  releaseId: string | null;
  version: number;
  rollback: boolean;
  /** The release the device last reported running. */
  runningReleaseId: string | null;
  /** Its tags (they choose tag-level update policies). */
  tags: Record<string, string>;
}

type DeviceRow = Selectable<DeviceTable> & { fleet_variables_revision: number | null };

function toDevice(row: DeviceRow): DeviceRecord {
  return {
    uuid: row.uuid,
    fleetId: row.fleet_id,
    name: row.name,
    keyHash: row.key_hash,
    deviceType: row.device_type,
    agentVersion: row.agent_version,
    online: row.online === 1,
    lastSeenAt: row.last_seen_at,
    status: row.status,
    releaseId: row.release_id,
    targetReleaseId: row.target_release_id,
    tags: JSON.parse(row.tags) as Record<string, string>,
    createdAt: row.created_at,
    services: row.services ? (JSON.parse(row.services) as ServiceState[]) : null,
    report: row.state_at
      ? {
          releaseId: row.update_release_id,
          bytesDone: row.bytes_done === null ? null : Number(row.bytes_done),
          bytesTotal: row.bytes_total === null ? null : Number(row.bytes_total),
          error: row.last_error,
          at: row.state_at,
        }
      : null,
    variables: {
      version: Number(row.fleet_variables_revision ?? 0) + Number(row.variables_revision),
      reportedVersion: row.variables_version === null ? null : Number(row.variables_version),
    },
  };
}

export interface DeviceQuery {
  fleetId?: string;
  /** Only devices of these fleets (an operator key limited to some fleets). */
  fleetIds?: string[];
  /** Substring of the UUID or name. */
  search?: string;
  tag?: { name: string; value?: string };
  limit: number;
  offset: number;
}

/** Devices in the database. */
@Injectable()
export class DevicesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /**
   * Bumps a device's variables revision in the caller's transaction (a device-level variable changed):
   * the variables feature's write to this table goes through here.
   */
  async bumpVariablesRevision(uuid: string, trx: Transaction<Database>): Promise<void> {
    await trx
      .updateTable('devices')
      .set({ variables_revision: sql<number>`variables_revision + 1` })
      .where('uuid', '=', uuid)
      .execute();
  }

  async insert(device: DeviceRecord): Promise<void> {
    await this.db
      .insertInto('devices')
      .values({
        uuid: device.uuid,
        fleet_id: device.fleetId,
        name: device.name,
        key_hash: device.keyHash,
        device_type: device.deviceType,
        agent_version: device.agentVersion,
        online: device.online ? 1 : 0,
        last_seen_at: device.lastSeenAt,
        status: device.status,
        release_id: device.releaseId,
        target_release_id: device.targetReleaseId,
        tags: JSON.stringify(device.tags),
        created_at: device.createdAt,
      })
      .execute();
  }

  /** Devices' rows with their fleet's variables revision (a device's variables version adds both). */
  private selectDevices() {
    return this.db
      .selectFrom('devices')
      .selectAll('devices')
      .select((eb) =>
        eb
          .selectFrom('fleets')
          .select('fleets.variables_revision')
          .whereRef('fleets.id', '=', 'devices.fleet_id')
          .as('fleet_variables_revision'),
      );
  }

  async find(uuid: string): Promise<DeviceRecord | null> {
    const row = await this.selectDevices().where('uuid', '=', uuid).executeTakeFirst();
    return row ? toDevice(row) : null;
  }

  async findByKeyHash(keyHash: string): Promise<DeviceRecord | null> {
    const row = await this.selectDevices().where('key_hash', '=', keyHash).executeTakeFirst();
    return row ? toDevice(row) : null;
  }

  async list(query: DeviceQuery): Promise<DeviceRecord[]> {
    let q = this.selectDevices();
    if (query.fleetId) q = q.where('fleet_id', '=', query.fleetId);
    if (query.fleetIds) {
      if (query.fleetIds.length === 0) return [];
      q = q.where('fleet_id', 'in', query.fleetIds);
    }
    if (query.search) {
      const like = `%${query.search.toLowerCase().replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
      q = q.where((eb) =>
        eb.or([eb(eb.fn('lower', ['uuid']), 'like', like), eb(eb.fn('lower', ['name']), 'like', like)]),
      );
    }
    const rows = await q.orderBy('created_at').orderBy('uuid').execute();
    // Tags are a JSON column: filtered here so the query stays portable between SQLite and PostgreSQL.
    const tag = query.tag;
    const devices = rows
      .map(toDevice)
      .filter(
        (d) => !tag || (tag.name in d.tags && (tag.value === undefined || d.tags[tag.name] === tag.value)),
      );
    return devices.slice(query.offset, query.offset + query.limit);
  }

  async setTags(uuid: string, tags: Record<string, string>): Promise<void> {
    await this.db
      .updateTable('devices')
      .set({ tags: JSON.stringify(tags) })
      .where('uuid', '=', uuid)
      .execute();
  }

  /**
   * Sets the target release of every listed device, one statement per 500 devices. The target version
   * grows in the same statement, so server replicas sharing the database never hand out a lower one.
   */
  async setTargets(uuids: string[], releaseId: string, rollback: boolean): Promise<void> {
    for (let i = 0; i < uuids.length; i += 500) {
      await this.db
        .updateTable('devices')
        .set((eb) => ({
          target_release_id: releaseId,
          target_rollback: rollback ? 1 : 0,
          target_version: eb('target_version', '+', 1),
        }))
        .where('uuid', 'in', uuids.slice(i, i + 500))
        .execute();
    }
  }

  /** A device's target as one read: the release, its version and rollback mark; null for no device. */
  async target(uuid: string): Promise<DeviceTargetRecord | null> {
    const row = await this.db
      .selectFrom('devices')
      .select(['fleet_id', 'target_release_id', 'target_version', 'target_rollback', 'release_id', 'tags'])
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    return row
      ? {
          fleetId: row.fleet_id,
          releaseId: row.target_release_id,
          version: Number(row.target_version),
          rollback: Number(row.target_rollback) === 1,
          runningReleaseId: row.release_id,
          tags: JSON.parse(row.tags) as Record<string, string>,
        }
      : null;
  }

  /** Deletes the device row, which revokes its key. Returns false when there was none. */
  async delete(uuid: string): Promise<boolean> {
    const result = await this.db.deleteFrom('devices').where('uuid', '=', uuid).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
