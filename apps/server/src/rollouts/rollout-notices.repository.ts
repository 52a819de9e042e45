import { Inject, Injectable } from '@nestjs/common';
import { Kysely, Transaction } from 'kysely';
import { DATABASE } from '../database/database.module';
import { Database } from '../database/database.types';

/** A notice still to be sent: set the device's target to `releaseId` and publish it. */
export interface PendingNotice {
  uuid: string;
  releaseId: string;
}

/** Devices told one release by one step: they share a statement and a notice. */
export interface NoticeGroup {
  releaseId: string;
  /** When the step decided it; null only for rows older than the notice's stable issue time. */
  issuedAt: string | null;
  uuids: string[];
}

/** Devices per `in (…)` list in one statement: under SQLite's and PostgreSQL's parameter limits. */
const UUIDS = 500;

/** Notices grouped by release: the devices of one release share a statement and a payload. */
function byRelease(notices: PendingNotice[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const n of notices) {
    const uuids = groups.get(n.releaseId);
    if (uuids) uuids.push(n.uuid);
    else groups.set(n.releaseId, [n.uuid]);
  }
  return groups;
}

/**
 * The notice outbox of rollouts (`rollout_devices.notice_sent`, `notice_release_id`): a step
 * enqueues the notices its decision asks for in the transaction that writes the decision, and they
 * are marked sent only once the devices' targets are set and published. A crash in between leaves
 * them pending, so they are sent again; devices ignore a notice for what they already run.
 */
@Injectable()
export class RolloutNoticesRepository {
  constructor(@Inject(DATABASE) private readonly db: Kysely<Database>) {}

  /** Marks these devices as to be told `releaseId`, in the caller's transaction. */
  async enqueue(rolloutId: string, notices: PendingNotice[], trx: Transaction<Database>): Promise<void> {
    for (const [releaseId, uuids] of byRelease(notices)) {
      for (let i = 0; i < uuids.length; i += UUIDS) {
        await trx
          .updateTable('rollout_devices')
          .set({ notice_sent: 0, notice_release_id: releaseId })
          .where('rollout_id', '=', rolloutId)
          .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
          .execute();
      }
    }
  }

  /**
   * The devices still to be told, grouped by the release each is to be told and the step that decided
   * it (`notified_at`, the notice's `issuedAt`): a notice sent again after a crash or a leader's
   * takeover is the very same notice, so no device is told twice for one step.
   */
  async pending(rolloutId: string): Promise<NoticeGroup[]> {
    const rows = await this.db
      .selectFrom('rollout_devices')
      .select(['device_uuid', 'notice_release_id', 'notified_at'])
      .where('rollout_id', '=', rolloutId)
      .where('notice_sent', '=', 0)
      .execute();
    const groups = new Map<string, NoticeGroup>();
    for (const r of rows) {
      if (r.notice_release_id === null) continue;
      const key = `${r.notice_release_id} ${r.notified_at ?? ''}`;
      let group = groups.get(key);
      if (!group)
        groups.set(key, (group = { releaseId: r.notice_release_id, issuedAt: r.notified_at, uuids: [] }));
      group.uuids.push(r.device_uuid);
    }
    return [...groups.values()];
  }

  async markSent(rolloutId: string, uuids: string[]): Promise<void> {
    for (let i = 0; i < uuids.length; i += UUIDS) {
      await this.db
        .updateTable('rollout_devices')
        .set({ notice_sent: 1 })
        .where('rollout_id', '=', rolloutId)
        .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
        .execute();
    }
  }

  /**
   * After a restart: the embedded broker may have lost retained notices, so every device still on its
   * way is told its target again (devices ignore a notice for what they already do).
   */
  async resendInFlight(rolloutId: string): Promise<void> {
    await this.db
      .updateTable('rollout_devices')
      .set({ notice_sent: 0 })
      .where('rollout_id', '=', rolloutId)
      .where('state', 'in', ['notified', 'updating', 'rolling_back'])
      .where('notice_release_id', 'is not', null)
      .execute();
  }
}
