import { Inject, Injectable } from '@nestjs/common';
import { Kysely } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

/** Devices' target releases (`devices.target_release_id`). */
@Injectable()
export class TargetsRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Sets the target of every listed device in one statement per 500 devices. */
  async setTarget(uuids: string[], releaseId: string): Promise<void> {
    for (let i = 0; i < uuids.length; i += 500) {
      await this.db
        .updateTable('devices')
        .set({ target_release_id: releaseId })
        .where('uuid', 'in', uuids.slice(i, i + 500))
        .execute();
    }
  }
}
