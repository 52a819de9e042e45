import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { RolloutStrategy } from '@ferry/protocol';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

export interface SavedRolloutSettings {
  trackLatest: boolean;
  defaultStrategy: RolloutStrategy;
}

/** Fleets' rollout settings (`fleet_rollout_settings`). */
@Injectable()
export class RolloutSettingsRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async find(fleetId: string): Promise<SavedRolloutSettings | null> {
    const row = await this.db
      .selectFrom('fleet_rollout_settings')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .executeTakeFirst();
    return row
      ? {
          trackLatest: row.track_latest === 1,
          defaultStrategy: JSON.parse(row.default_strategy) as RolloutStrategy,
        }
      : null;
  }

  async save(fleetId: string, settings: SavedRolloutSettings, at: string): Promise<void> {
    const values = {
      track_latest: settings.trackLatest ? 1 : 0,
      default_strategy: JSON.stringify(settings.defaultStrategy),
      updated_at: at,
    };
    await this.db
      .insertInto('fleet_rollout_settings')
      .values({ fleet_id: fleetId, ...values })
      .onConflict((oc) => oc.column('fleet_id').doUpdateSet(values))
      .execute();
  }
}
