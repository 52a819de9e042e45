import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';
import { DeviceHealthCounts } from './health-comparison';

/** Reads what devices did against their health (`device_health_events`, written at report ingestion). */
@Injectable()
export class RolloutHealthRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Per device, per kind, the events in [from, to); devices without any are left out. */
  async countsByDevice(uuids: string[], from: string, to: string): Promise<Map<string, DeviceHealthCounts>> {
    const counts = new Map<string, Map<string, number>>();
    // Chunks keep the statement under SQLite's and PostgreSQL's parameter limits.
    for (let i = 0; i < uuids.length; i += 500) {
      const rows = await this.db
        .selectFrom('device_health_events')
        .select((eb) => ['device_uuid', 'kind', eb.fn.sum<number | string>('count').as('total')])
        .where('device_uuid', 'in', uuids.slice(i, i + 500))
        .where('at', '>=', from)
        .where('at', '<', to)
        .groupBy(['device_uuid', 'kind'])
        .execute();
      for (const row of rows) {
        let device = counts.get(row.device_uuid);
        if (!device) counts.set(row.device_uuid, (device = new Map<string, number>()));
        device.set(row.kind, Number(row.total));
      }
    }
    return counts;
  }
}
