import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

/** Which blobs a fleet's devices may download. */
@Injectable()
export class BlobAccessRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /**
   * Whether a release of `fleetId` names `digest` (a config, layer or gzip copy), or `digest` is a
   * delta that builds a layer a release of `fleetId` names. Two indexed lookups.
   */
  async fleetMayFetch(fleetId: string, digest: string): Promise<boolean> {
    const named = await this.db
      .selectFrom('release_blobs')
      .select('digest')
      .where('fleet_id', '=', fleetId)
      .where('digest', '=', digest)
      .limit(1)
      .executeTakeFirst();
    if (named) return true;
    const delta = await this.db
      .selectFrom('deltas')
      .innerJoin('release_blobs', 'release_blobs.digest', 'deltas.target_diff_id')
      .select('deltas.digest')
      .where('deltas.digest', '=', digest)
      .where('release_blobs.fleet_id', '=', fleetId)
      .limit(1)
      .executeTakeFirst();
    return delta !== undefined;
  }
}
