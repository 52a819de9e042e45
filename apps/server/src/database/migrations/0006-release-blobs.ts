import { Kysely, sql } from 'kysely';
import { ReleaseManifest, releaseBlobDigests } from '@ferry/protocol';

/**
 * `release_blobs`: which blobs each release (of which fleet) names, so a device's download can be
 * checked against its own fleet's releases with one indexed lookup. Filled from existing manifests.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('release_blobs')
    .addColumn('release_id', 'varchar(36)', (c) => c.notNull().references('releases.id').onDelete('cascade'))
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('digest', 'varchar(71)', (c) => c.notNull())
    .addPrimaryKeyConstraint('release_blobs_pk', ['release_id', 'digest'])
    .execute();
  await db.schema
    .createIndex('release_blobs_fleet_digest')
    .on('release_blobs')
    .columns(['fleet_id', 'digest'])
    .execute();
  const releases = await sql<{ id: string; fleet_id: string; manifest: string }>`
    select id, fleet_id, manifest from releases`.execute(db);
  for (const release of releases.rows) {
    const manifest = JSON.parse(release.manifest) as Partial<ReleaseManifest>;
    // A manifest without services (none Ferry wrote) names no blob.
    const digests = Array.isArray(manifest.services) ? releaseBlobDigests(manifest as ReleaseManifest) : [];
    const rows = digests.map((digest) => ({ release_id: release.id, fleet_id: release.fleet_id, digest }));
    if (rows.length > 0)
      await (db as Kysely<{ release_blobs: (typeof rows)[number] }>)
        .insertInto('release_blobs')
        .values(rows)
        .execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('release_blobs').execute();
}
