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

/** A silent device is told again at most this many times for one notice. */
export const MAX_NOTICE_RESENDS = 8;
/** The longest wait between two tellings of a silent device. */
const MAX_RESEND_GAP_MS = 15 * 60_000;

/** How long after its `tries`-th re-send a silent device is told again: `firstMs`, doubling, capped. */
export function resendGapMs(firstMs: number, tries: number): number {
  return Math.min(firstMs * 2 ** tries, MAX_RESEND_GAP_MS);
}

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

  /**
   * Marks these devices as to be told `releaseId`, in the caller's transaction; one still silent at
   * `dueAt` is told again ({@link resendSilent}).
   */
  async enqueue(
    rolloutId: string,
    notices: PendingNotice[],
    dueAt: string,
    trx: Transaction<Database>,
  ): Promise<void> {
    for (const [releaseId, uuids] of byRelease(notices)) {
      for (let i = 0; i < uuids.length; i += UUIDS) {
        await trx
          .updateTable('rollout_devices')
          .set({ notice_sent: 0, notice_release_id: releaseId, notice_tries: 0, notice_due_at: dueAt })
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

  /**
   * Devices told their target (`notified`) that have not moved since, past their `notice_due_at`: a
   * connected one is marked to be told the very same notice again (a notice lost between the server
   * processes of a cluster, or on its way to the device, is acknowledged all the same); one offline
   * gets the retained notice when it reconnects and only has its next look put off. `firstMs` is
   * `FERRY_NOTICE_RESEND_SECONDS`. Returns how many are to be told again.
   */
  async resendSilent(rolloutId: string, now: number, firstMs: number): Promise<number> {
    const due = await this.db
      .selectFrom('rollout_devices as r')
      .innerJoin('devices as d', 'd.uuid', 'r.device_uuid')
      .select(['r.device_uuid as uuid', 'r.notice_tries as tries', 'd.online'])
      .where('r.rollout_id', '=', rolloutId)
      .where('r.state', '=', 'notified')
      .where('r.notice_sent', '=', 1)
      .where('r.notice_due_at', '<=', new Date(now).toISOString())
      .execute();
    // One statement per outcome: the devices of one step share their tries.
    const changes = new Map<
      string,
      { tries: number; dueAt: string | null; resend: boolean; uuids: string[] }
    >();
    for (const d of due) {
      const resend = Number(d.online) === 1;
      const tries = Number(d.tries) + (resend ? 1 : 0);
      const dueAt =
        tries >= MAX_NOTICE_RESENDS ? null : new Date(now + resendGapMs(firstMs, tries)).toISOString();
      const key = `${tries} ${dueAt} ${resend}`;
      const change = changes.get(key) ?? { tries, dueAt, resend, uuids: [] };
      change.uuids.push(d.uuid);
      changes.set(key, change);
    }
    let resent = 0;
    for (const { tries, dueAt, resend, uuids } of changes.values()) {
      for (let i = 0; i < uuids.length; i += UUIDS) {
        await this.db
          .updateTable('rollout_devices')
          .set({ notice_tries: tries, notice_due_at: dueAt, ...(resend ? { notice_sent: 0 } : {}) })
          .where('rollout_id', '=', rolloutId)
          .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
          // Moved on meanwhile (a report came): nothing to tell again.
          .where('state', '=', 'notified')
          .execute();
      }
      if (resend) resent += uuids.length;
    }
    return resent;
  }
}
