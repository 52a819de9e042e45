import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import {
  Architecture,
  Fleet,
  ProvisioningKey,
  ReleaseSignature,
  ReleaseTrust,
  ReleaseTrustStep,
} from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, FleetTable, ProvisioningKeyTable } from '../database/database.types';

export interface FleetRecord extends Fleet {
  signingPrivateKey: string;
}

function toFleet(row: Selectable<FleetTable>): FleetRecord {
  return {
    id: row.id,
    name: row.name,
    slug: row.slug,
    arch: row.arch as Architecture,
    signingPublicKey: row.signing_public_key,
    signingPrivateKey: row.signing_private_key,
    releaseTrust: row.release_trust ? (JSON.parse(row.release_trust) as ReleaseTrust) : null,
    createdAt: row.created_at,
  };
}

function toKey(row: Selectable<ProvisioningKeyTable>): ProvisioningKey {
  return {
    id: row.id,
    fleetId: row.fleet_id,
    name: row.name,
    prefix: row.prefix,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

/** Fleets and their provisioning keys in the database. */
@Injectable()
export class FleetsRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async insert(fleet: FleetRecord): Promise<void> {
    await this.db
      .insertInto('fleets')
      .values({
        id: fleet.id,
        name: fleet.name,
        slug: fleet.slug,
        arch: fleet.arch,
        signing_public_key: fleet.signingPublicKey,
        signing_private_key: fleet.signingPrivateKey,
        release_trust: fleet.releaseTrust ? JSON.stringify(fleet.releaseTrust) : null,
        created_at: fleet.createdAt,
      })
      .execute();
    if (fleet.releaseTrust)
      await this.recordTrust(this.db, fleet.id, fleet.releaseTrust, [], fleet.createdAt);
  }

  private async recordTrust(
    db: Kysely<Database>,
    fleetId: string,
    trust: ReleaseTrust,
    signatures: ReleaseSignature[],
    at: string,
  ): Promise<void> {
    await db
      .insertInto('release_trust_versions')
      .values({
        fleet_id: fleetId,
        version: trust.version,
        trust: JSON.stringify(trust),
        signatures: JSON.stringify(signatures),
        created_at: at,
      })
      .execute();
  }

  /** The fleet's release-key rotations (version 2 and up), oldest first, with their approving signatures. */
  async trustChain(fleetId: string): Promise<ReleaseTrustStep[]> {
    const rows = await this.db
      .selectFrom('release_trust_versions')
      .select(['trust', 'signatures'])
      .where('fleet_id', '=', fleetId)
      .where('version', '>', 1)
      .orderBy('version')
      .execute();
    return rows.map((r) => ({
      trust: JSON.parse(r.trust) as ReleaseTrust,
      signatures: JSON.parse(r.signatures) as ReleaseSignature[],
    }));
  }

  /**
   * Replaces the fleet's release keys with `next` if they are still at `next.version - 1` (two
   * rotations at once: one wins, the other gets false), keeping the approved version and signatures.
   */
  async rotateTrust(
    fleetId: string,
    next: ReleaseTrust,
    signatures: ReleaseSignature[],
    at: string,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('fleets')
        .select('release_trust')
        .where('id', '=', fleetId)
        .executeTakeFirst();
      const current = row?.release_trust ? (JSON.parse(row.release_trust) as ReleaseTrust) : null;
      if (!current || current.version !== next.version - 1) return false;
      await trx
        .updateTable('fleets')
        .set({ release_trust: JSON.stringify(next) })
        .where('id', '=', fleetId)
        .execute();
      await this.recordTrust(trx, fleetId, next, signatures, at);
      return true;
    });
  }

  async list(): Promise<FleetRecord[]> {
    const rows = await this.db
      .selectFrom('fleets')
      .selectAll()
      .orderBy('created_at')
      .orderBy('slug')
      .execute();
    return rows.map(toFleet);
  }

  /** Finds a fleet by id or slug. */
  async find(idOrSlug: string): Promise<FleetRecord | null> {
    const row = await this.db
      .selectFrom('fleets')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrSlug), eb('slug', '=', idOrSlug)]))
      .executeTakeFirst();
    return row ? toFleet(row) : null;
  }

  async slugTaken(slug: string): Promise<boolean> {
    const row = await this.db.selectFrom('fleets').select('id').where('slug', '=', slug).executeTakeFirst();
    return row !== undefined;
  }

  async insertKey(key: ProvisioningKey, keyHash: string): Promise<void> {
    await this.db
      .insertInto('provisioning_keys')
      .values({
        id: key.id,
        fleet_id: key.fleetId,
        name: key.name,
        key_hash: keyHash,
        prefix: key.prefix,
        created_at: key.createdAt,
        revoked_at: null,
      })
      .execute();
  }

  async listKeys(fleetId: string): Promise<ProvisioningKey[]> {
    const rows = await this.db
      .selectFrom('provisioning_keys')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .orderBy('created_at')
      .execute();
    return rows.map(toKey);
  }

  /** Marks a key revoked; returns false when the fleet has no such key. */
  async revokeKey(fleetId: string, keyId: string, at: string): Promise<boolean> {
    const result = await this.db
      .updateTable('provisioning_keys')
      .set({ revoked_at: at })
      .where('fleet_id', '=', fleetId)
      .where('id', '=', keyId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) return true;
    const exists = await this.db
      .selectFrom('provisioning_keys')
      .select('id')
      .where('fleet_id', '=', fleetId)
      .where('id', '=', keyId)
      .executeTakeFirst();
    return exists !== undefined;
  }

  /** The fleet of an unrevoked provisioning key with this hash. */
  async fleetOfKey(keyHash: string): Promise<FleetRecord | null> {
    const row = await this.db
      .selectFrom('provisioning_keys')
      .innerJoin('fleets', 'fleets.id', 'provisioning_keys.fleet_id')
      .selectAll('fleets')
      .where('provisioning_keys.key_hash', '=', keyHash)
      .where('provisioning_keys.revoked_at', 'is', null)
      .executeTakeFirst();
    return row ? toFleet(row) : null;
  }

  async bindMounts(fleetId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('fleet_bind_mounts')
      .select('path')
      .where('fleet_id', '=', fleetId)
      .orderBy('path')
      .execute();
    return rows.map((r) => r.path);
  }

  async setBindMounts(fleetId: string, paths: string[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('fleet_bind_mounts').where('fleet_id', '=', fleetId).execute();
      if (paths.length > 0)
        await trx
          .insertInto('fleet_bind_mounts')
          .values(paths.map((path) => ({ fleet_id: fleetId, path })))
          .execute();
    });
  }
}
