import { Kysely } from 'kysely';

/**
 * Release owners' keys (docs/security.md): `fleets.release_trust` is the pinned root of trust (JSON
 * `{version, keys, threshold}`, null: the server signs the fleet's releases); every version of it is
 * kept in `release_trust_versions` with the signatures of the previous keys that approved it, so a
 * device can follow a rotation; `releases.owner_signatures` holds the owners' signatures of a manifest.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('fleets').addColumn('release_trust', 'text').execute();
  await db.schema.alterTable('releases').addColumn('owner_signatures', 'text').execute();
  await db.schema
    .createTable('release_trust_versions')
    .addColumn('fleet_id', 'varchar(36)', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('trust', 'text', (c) => c.notNull())
    .addColumn('signatures', 'text', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('release_trust_versions_pk', ['fleet_id', 'version'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('release_trust_versions').execute();
  await db.schema.alterTable('releases').dropColumn('owner_signatures').execute();
  await db.schema.alterTable('fleets').dropColumn('release_trust').execute();
}
