import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { Device } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, DeviceTable } from '../database/database.types';

export interface DeviceRecord extends Device {
  keyHash: string;
}

function toDevice(row: Selectable<DeviceTable>): DeviceRecord {
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
    report: row.state_at
      ? {
          releaseId: row.update_release_id,
          bytesDone: row.bytes_done === null ? null : Number(row.bytes_done),
          bytesTotal: row.bytes_total === null ? null : Number(row.bytes_total),
          error: row.last_error,
          at: row.state_at,
        }
      : null,
  };
}

export interface DeviceQuery {
  fleetId?: string;
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

  async find(uuid: string): Promise<DeviceRecord | null> {
    const row = await this.db.selectFrom('devices').selectAll().where('uuid', '=', uuid).executeTakeFirst();
    return row ? toDevice(row) : null;
  }

  async findByKeyHash(keyHash: string): Promise<DeviceRecord | null> {
    const row = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('key_hash', '=', keyHash)
      .executeTakeFirst();
    return row ? toDevice(row) : null;
  }

  async list(query: DeviceQuery): Promise<DeviceRecord[]> {
    let q = this.db.selectFrom('devices').selectAll();
    if (query.fleetId) q = q.where('fleet_id', '=', query.fleetId);
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

  /** Deletes the device row, which revokes its key. Returns false when there was none. */
  async delete(uuid: string): Promise<boolean> {
    const result = await this.db.deleteFrom('devices').where('uuid', '=', uuid).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}
