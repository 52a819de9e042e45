import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { DATABASE } from '../database/database.token';
import { Database } from '../database/database.types';

/** Finds which fleet a route's subject belongs to, for fleet-scoped keys and the audit log. */
@Injectable()
export class FleetScopeRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  async fleetByIdOrSlug(value: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('fleets')
      .select('id')
      .where((eb) => eb.or([eb('id', '=', value), eb('slug', '=', value)]))
      .executeTakeFirst();
    return row?.id ?? null;
  }

  async fleetOfDevice(uuid: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('devices')
      .select('fleet_id')
      .where('uuid', '=', uuid)
      .executeTakeFirst();
    return row?.fleet_id ?? null;
  }

  async fleetOfRelease(id: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('releases')
      .select('fleet_id')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.fleet_id ?? null;
  }

  async fleetOfRollout(id: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('rollouts')
      .select('fleet_id')
      .where('id', '=', id)
      .executeTakeFirst();
    return row?.fleet_id ?? null;
  }
}
