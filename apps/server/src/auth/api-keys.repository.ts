import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import { ApiKey, OperatorRole } from '@ferry/protocol';
import { DATABASE } from '../database/database.token';
import { ApiKeyTable, Database } from '../database/database.types';

export interface ApiKeyRecord extends ApiKey {
  keyHash: string;
}

function toKey(row: Selectable<ApiKeyTable>): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    role: row.role as OperatorRole,
    fleetIds: row.fleet_ids === null ? null : (JSON.parse(row.fleet_ids) as string[]),
    prefix: row.prefix,
    createdAt: row.created_at,
    createdBy: row.created_by,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    keyHash: row.key_hash,
  };
}

/** Operator API keys and server-wide settings in the database. */
@Injectable()
export class ApiKeysRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async insert(key: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: key.id,
        name: key.name,
        role: key.role,
        fleet_ids: key.fleetIds === null ? null : JSON.stringify(key.fleetIds),
        key_hash: key.keyHash,
        prefix: key.prefix,
        created_at: key.createdAt,
        created_by: key.createdBy,
        expires_at: key.expiresAt,
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
  }

  async findByName(name: string): Promise<ApiKeyRecord | null> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toKey(row) : null;
  }

  async findById(id: string): Promise<ApiKeyRecord | null> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toKey(row) : null;
  }

  async findByHash(keyHash: string): Promise<ApiKeyRecord | null> {
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('key_hash', '=', keyHash)
      .executeTakeFirst();
    return row ? toKey(row) : null;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const rows = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .orderBy('created_at')
      .orderBy('name')
      .execute();
    return rows.map(toKey);
  }

  async revoke(id: string, at: string): Promise<void> {
    await this.db
      .updateTable('api_keys')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  /** Whether a working admin key exists (not revoked, not expired at `now`). */
  async hasActiveAdmin(now: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('api_keys')
      .select('id')
      .where('role', '=', 'admin')
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .executeTakeFirst();
    return row !== undefined;
  }

  async setting(name: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('server_settings')
      .select('value')
      .where('name', '=', name)
      .executeTakeFirst();
    return row?.value ?? null;
  }

  async setSetting(name: string, value: string): Promise<void> {
    await this.db
      .insertInto('server_settings')
      .values({ name, value })
      .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
      .execute();
  }
}
