import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Selectable } from 'kysely';
import {
  ConflictError,
  Release,
  ReleaseLayer,
  ReleaseManifest,
  ReleaseSignature,
  releaseBlobDigests,
} from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database, ReleaseTable } from '../database/database.types';

function toRelease(row: Selectable<ReleaseTable>): Release {
  const manifest = JSON.parse(row.manifest) as ReleaseManifest;
  return {
    id: row.id,
    fleetId: row.fleet_id,
    version: row.version,
    note: row.note,
    createdAt: row.created_at,
    services: manifest.services,
    totalSize: Number(row.total_size),
    manifest,
    signature: row.signature,
    ownerSignatures:
      row.owner_signatures === null ? null : (JSON.parse(row.owner_signatures) as ReleaseSignature[]),
  };
}

/** Releases and their layers (which layers a release uses is in its manifest). */
@Injectable()
export class ReleasesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async highestVersion(fleetId: string): Promise<number> {
    const row = await this.db
      .selectFrom('releases')
      .select((eb) => eb.fn.max('version').as('max'))
      .where('fleet_id', '=', fleetId)
      .executeTakeFirst();
    return Number(row?.max ?? 0);
  }

  async versionTaken(fleetId: string, version: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('releases')
      .select('id')
      .where('fleet_id', '=', fleetId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Which of these layers the database already knows. */
  async knownLayers(diffIds: string[]): Promise<Set<string>> {
    if (diffIds.length === 0) return new Set();
    const rows = await this.db
      .selectFrom('layers')
      .select('diff_id')
      .where('diff_id', 'in', diffIds)
      .execute();
    return new Set(rows.map((r) => r.diff_id));
  }

  /**
   * Inserts a release with its layers in one transaction. `build` receives the version (the one asked
   * for, or the fleet's highest plus one) and returns the signed record.
   */
  async insert(
    fleetId: string,
    requestedVersion: number | undefined,
    build: (version: number) => Release,
  ): Promise<Release> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('releases')
        .select((eb) => eb.fn.max('version').as('max'))
        .where('fleet_id', '=', fleetId)
        .executeTakeFirst();
      const highest = Number(row?.max ?? 0);
      // Versions only grow per fleet (docs/security.md): a device can then refuse to go back.
      if (requestedVersion !== undefined && requestedVersion <= highest)
        throw new ConflictError(
          `release versions only grow: the fleet is at v${highest}, push v${highest + 1} or more`,
        );
      const version = requestedVersion ?? highest + 1;
      const release = build(version);
      const layers = new Map<string, ReleaseLayer>();
      for (const service of release.services)
        for (const layer of service.layers) layers.set(layer.diffId, layer);
      for (const layer of layers.values()) {
        await trx
          .insertInto('layers')
          .values({
            diff_id: layer.diffId,
            size: layer.size,
            gzip_digest: layer.gzipDigest,
            gzip_size: layer.gzipSize,
            created_at: release.createdAt,
          })
          .onConflict((oc) => oc.column('diff_id').doNothing())
          .execute();
      }
      await trx
        .insertInto('releases')
        .values({
          id: release.id,
          fleet_id: release.fleetId,
          version: release.version,
          note: release.note,
          total_size: release.totalSize,
          manifest: JSON.stringify(release.manifest),
          signature: release.signature,
          owner_signatures: release.ownerSignatures === null ? null : JSON.stringify(release.ownerSignatures),
          created_at: release.createdAt,
        })
        .execute();
      const blobs = releaseBlobDigests(release.manifest).map((digest) => ({
        release_id: release.id,
        fleet_id: release.fleetId,
        digest,
      }));
      if (blobs.length > 0) await trx.insertInto('release_blobs').values(blobs).execute();
      return release;
    });
  }

  async setOwnerSignatures(id: string, signatures: ReleaseSignature[]): Promise<void> {
    await this.db
      .updateTable('releases')
      .set({ owner_signatures: JSON.stringify(signatures) })
      .where('id', '=', id)
      .execute();
  }

  async find(id: string): Promise<Release | null> {
    const row = await this.db.selectFrom('releases').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRelease(row) : null;
  }

  async findByVersion(fleetId: string, version: number): Promise<Release | null> {
    const row = await this.db
      .selectFrom('releases')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .where('version', '=', version)
      .executeTakeFirst();
    return row ? toRelease(row) : null;
  }

  async listForFleet(fleetId: string): Promise<Release[]> {
    const rows = await this.db
      .selectFrom('releases')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .orderBy('version', 'desc')
      .execute();
    return rows.map(toRelease);
  }
}
