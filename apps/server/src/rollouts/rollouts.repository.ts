import { Inject, Injectable } from '@nestjs/common';
import { Insertable, Kysely, Selectable, Transaction, sql } from 'kysely';
import {
  BatchState,
  ConflictError,
  HealthVerdict,
  RolloutDeviceState,
  RolloutDeviceView,
  RolloutState,
  RolloutStrategy,
  TagFilter,
} from '@ferry/protocol';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { DATABASE } from '../database/database.module';
import { Database, RolloutBatchTable, RolloutDeviceTable, RolloutTable } from '../database/database.types';
import { Decision, EngineBatch, EngineDevice, RolloutSnapshot } from './rollout-engine';
import { CandidateDevice } from './rollout-planner';

function toBatch(b: Selectable<RolloutBatchTable>): EngineBatch {
  return {
    number: b.number,
    state: b.state as BatchState,
    startedAt: b.started_at,
    bakeUntil: b.bake_until,
    finishedAt: b.finished_at,
    health: b.health ? (JSON.parse(b.health) as HealthVerdict) : null,
  };
}

export interface RolloutRecord {
  id: string;
  fleetId: string;
  releaseId: string;
  state: RolloutState;
  reason: string | null;
  trigger: 'manual' | 'track-latest';
  strategy: RolloutStrategy;
  tagFilter: TagFilter | null;
  currentBatch: number;
  projectedBytes: number;
  fullBytes: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** A device's row in a rollout is exactly what the API shows of it. */
export type RolloutDeviceRecord = RolloutDeviceView;

export interface NewRollout {
  rollout: RolloutRecord;
  batches: { number: number; size: number }[];
  devices: Omit<RolloutDeviceRecord, 'state' | 'bytesSent' | 'reason' | 'deadline' | 'updatedAt'>[];
}

function toRollout(row: Selectable<RolloutTable>): RolloutRecord {
  return {
    id: row.id,
    fleetId: row.fleet_id,
    releaseId: row.release_id,
    state: row.state as RolloutState,
    reason: row.reason,
    trigger: row.trigger as RolloutRecord['trigger'],
    strategy: JSON.parse(row.strategy) as RolloutStrategy,
    tagFilter: row.tag_filter ? (JSON.parse(row.tag_filter) as TagFilter) : null,
    currentBatch: row.current_batch,
    projectedBytes: Number(row.projected_bytes),
    fullBytes: Number(row.full_bytes),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

/** A device's row as it enters a rollout: pending, told nothing yet. */
function pendingDeviceRow(
  rolloutId: string,
  d: Pick<RolloutDeviceRecord, 'uuid' | 'name' | 'batch' | 'fromReleaseId' | 'projectedBytes' | 'fullBytes'>,
  at: string,
): Insertable<RolloutDeviceTable> {
  return {
    rollout_id: rolloutId,
    device_uuid: d.uuid,
    name: d.name,
    batch: d.batch,
    state: 'pending',
    from_release_id: d.fromReleaseId,
    projected_bytes: d.projectedBytes,
    full_bytes: d.fullBytes,
    bytes_sent: 0,
    reason: null,
    notified_at: null,
    deadline: null,
    notice_sent: 1,
    notice_release_id: null,
    updated_at: at,
  };
}

const ACTIVE: RolloutState[] = ['scheduled', 'running', 'paused'];
/** Rows per statement: keeps inserts under SQLite's and PostgreSQL's parameter limits. */
const CHUNK = 200;
/** Devices per `in (…)` list in one statement, for the same reason. */
const UUIDS = 500;
/** Rollouts of at least this many devices refresh the table's statistics once written. */
const ANALYZE_AFTER_DEVICES = 1000;

/**
 * The rollout aggregate: a rollout, its batches and its devices' states (`rollouts`,
 * `rollout_batches`, `rollout_devices`). Its two writes of many rows, {@link insert} and
 * {@link apply}, run in the caller's transaction, which also writes the count sample that goes
 * with them.
 */
@Injectable()
export class RolloutsRepository {
  constructor(
    @Inject(DATABASE) private readonly db: Kysely<Database>,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * Refreshes PostgreSQL's statistics of `rollout_devices` after a large rollout's devices are written
   * (once committed). The steps' `rollout_id = ? and device_uuid in (…)` updates are planned from them:
   * without fresh ones (autovacuum off, or not run yet) PostgreSQL took the `(rollout_id, state)` index
   * and read every device of the rollout for each 500-device statement, so a step grew with the square
   * of its size (50,000 devices: 59 s; 930 ms a statement instead of 20 ms). Sampled, so bounded: ~0.5 s
   * at 100,000 rows. SQLite plans these by the primary key without statistics.
   */
  async refreshStatistics(devices: number): Promise<void> {
    if (this.config.database.kind !== 'postgres' || devices < ANALYZE_AFTER_DEVICES) return;
    await sql`analyze rollout_devices`.execute(this.db);
  }

  async insert(input: NewRollout, trx: Transaction<Database>): Promise<void> {
    const { rollout } = input;
    await trx
      .insertInto('rollouts')
      .values({
        id: rollout.id,
        fleet_id: rollout.fleetId,
        release_id: rollout.releaseId,
        state: rollout.state,
        reason: rollout.reason,
        trigger: rollout.trigger,
        strategy: JSON.stringify(rollout.strategy),
        tag_filter: rollout.tagFilter ? JSON.stringify(rollout.tagFilter) : null,
        current_batch: rollout.currentBatch,
        projected_bytes: rollout.projectedBytes,
        full_bytes: rollout.fullBytes,
        created_at: rollout.createdAt,
        updated_at: rollout.updatedAt,
        finished_at: rollout.finishedAt,
      })
      .execute();
    if (input.batches.length > 0) {
      await trx
        .insertInto('rollout_batches')
        .values(
          input.batches.map((b) => ({
            rollout_id: rollout.id,
            number: b.number,
            state: 'pending',
            size: b.size,
            started_at: null,
            bake_until: null,
            finished_at: null,
          })),
        )
        .execute();
    }
    for (let i = 0; i < input.devices.length; i += CHUNK) {
      await trx
        .insertInto('rollout_devices')
        .values(
          input.devices.slice(i, i + CHUNK).map((d) => pendingDeviceRow(rollout.id, d, rollout.createdAt)),
        )
        .execute();
    }
  }

  async find(id: string): Promise<RolloutRecord | null> {
    const row = await this.db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRollout(row) : null;
  }

  async listForFleet(
    fleetId: string,
    state: RolloutState | undefined,
    limit: number,
  ): Promise<RolloutRecord[]> {
    let q = this.db.selectFrom('rollouts').selectAll().where('fleet_id', '=', fleetId);
    if (state) q = q.where('state', '=', state);
    const rows = await q.orderBy('created_at', 'desc').limit(limit).execute();
    return rows.map(toRollout);
  }

  async active(): Promise<RolloutRecord[]> {
    const rows = await this.db
      .selectFrom('rollouts')
      .selectAll()
      .where('state', 'in', ACTIVE)
      .orderBy('created_at')
      .execute();
    return rows.map(toRollout);
  }

  async activeInFleet(fleetId: string): Promise<RolloutRecord | null> {
    const row = await this.db
      .selectFrom('rollouts')
      .selectAll()
      .where('fleet_id', '=', fleetId)
      .where('state', 'in', ACTIVE)
      .executeTakeFirst();
    return row ? toRollout(row) : null;
  }

  /** A rollout with its batches and devices, and what each device last reported. */
  async snapshot(rollout: RolloutRecord): Promise<RolloutSnapshot> {
    const batches = await this.db
      .selectFrom('rollout_batches')
      .selectAll()
      .where('rollout_id', '=', rollout.id)
      .orderBy('number')
      .execute();
    const devices = await this.db
      .selectFrom('rollout_devices as r')
      .leftJoin('devices as d', 'd.uuid', 'r.device_uuid')
      .select([
        'r.device_uuid',
        'r.batch',
        'r.state',
        'r.from_release_id',
        'r.notified_at',
        'r.deadline',
        'r.bytes_sent',
        'r.reason',
        'd.uuid as device_exists',
        'd.status',
        'd.update_release_id',
        'd.bytes_done',
        'd.bytes_total',
        'd.last_error',
        'd.state_at',
      ])
      .where('r.rollout_id', '=', rollout.id)
      .execute();
    return {
      rollout: {
        id: rollout.id,
        state: rollout.state,
        releaseId: rollout.releaseId,
        strategy: rollout.strategy,
        currentBatch: rollout.currentBatch,
        reason: rollout.reason,
        createdAt: rollout.createdAt,
        finishedAt: rollout.finishedAt,
      },
      batches: batches.map(toBatch),
      devices: devices.map((d): EngineDevice => ({
        uuid: d.device_uuid,
        batch: d.batch,
        state: d.state as RolloutDeviceState,
        fromReleaseId: d.from_release_id,
        notifiedAt: d.notified_at,
        deadline: d.deadline,
        bytesSent: Number(d.bytes_sent),
        reason: d.reason,
        report: {
          exists: d.device_exists !== null,
          status: d.status ?? null,
          releaseId: d.update_release_id ?? null,
          bytesDone: d.bytes_done === null || d.bytes_done === undefined ? null : Number(d.bytes_done),
          bytesTotal: d.bytes_total === null || d.bytes_total === undefined ? null : Number(d.bytes_total),
          error: d.last_error ?? null,
          at: d.state_at ?? null,
        },
      })),
    };
  }

  /**
   * Devices of the rollout's fleet it does not list and that do not run its release yet: the
   * candidates for late joiners (the planner applies the tag filter and pins).
   */
  async unlisted(rollout: RolloutRecord): Promise<CandidateDevice[]> {
    const rows = await this.db
      .selectFrom('devices as d')
      .select(['d.uuid', 'd.name', 'd.online', 'd.release_id', 'd.tags', 'd.created_at'])
      .where('d.fleet_id', '=', rollout.fleetId)
      .where((eb) => eb.or([eb('d.release_id', 'is', null), eb('d.release_id', '!=', rollout.releaseId)]))
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('rollout_devices as r')
              .select('r.device_uuid')
              .where('r.rollout_id', '=', rollout.id)
              .whereRef('r.device_uuid', '=', 'd.uuid'),
          ),
        ),
      )
      .execute();
    return rows.map((d) => ({
      uuid: d.uuid,
      name: d.name,
      online: d.online === 1,
      releaseId: d.release_id,
      tags: JSON.parse(d.tags) as Record<string, string>,
      createdAt: d.created_at,
    }));
  }

  /**
   * What tells whether a step could change anything: how many reports the watched devices have sent
   * (it grows with any report written, whenever it was taken in), how many watched devices still
   * exist, and the next deadline or bake end.
   */
  async probe(
    rollout: RolloutRecord,
  ): Promise<{ reports: string; present: number; wakeAt: string | null; resendAt: string | null }> {
    const row = await this.db
      .selectFrom('rollout_devices as r')
      .leftJoin('devices as d', 'd.uuid', 'r.device_uuid')
      .select((eb) => [
        eb.fn.sum<string | number | null>('d.report_count').as('reports'),
        eb.fn.count('d.uuid').as('present'),
        eb.fn.min('r.deadline').as('next_deadline'),
        eb.fn
          .min(
            eb
              .case()
              .when(eb.and([eb('r.state', '=', 'notified'), eb('r.notice_sent', '=', 1)]))
              .then(eb.ref('r.notice_due_at'))
              .end(),
          )
          .as('next_resend'),
      ])
      .where('r.rollout_id', '=', rollout.id)
      .where('r.state', 'in', ['notified', 'updating', 'verifying', 'rolling_back'])
      .executeTakeFirst();
    const batch = await this.db
      .selectFrom('rollout_batches')
      .select('bake_until')
      .where('rollout_id', '=', rollout.id)
      .where('number', '=', rollout.currentBatch)
      .where('state', '=', 'baking')
      .executeTakeFirst();
    const times = [row?.next_deadline ?? null, batch?.bake_until ?? null].filter(
      (t): t is string => t !== null,
    );
    return {
      reports: String(row?.reports ?? 0),
      present: Number(row?.present ?? 0),
      wakeAt: times.sort()[0] ?? null,
      resendAt: row?.next_resend ?? null,
    };
  }

  /**
   * Writes a decision's state changes, before any of its effects (the notices it asks for go to the
   * outbox, `RolloutNoticesRepository.enqueue`, in the same transaction).
   */
  async apply(
    rolloutId: string,
    expectedUpdatedAt: string,
    decision: Decision,
    at: string,
    trx: Transaction<Database>,
  ): Promise<void> {
    // Optimistic: a decision made from a snapshot another writer has changed since is not written.
    const result = await trx
      .updateTable('rollouts')
      .set({
        updated_at: at,
        ...(decision.rollout
          ? {
              state: decision.rollout.state,
              reason: decision.rollout.reason,
              current_batch: decision.rollout.currentBatch,
              finished_at: decision.rollout.finishedAt,
            }
          : {}),
      })
      .where('id', '=', rolloutId)
      .where('updated_at', '=', expectedUpdatedAt)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1)
      throw new ConflictError(`rollout ${rolloutId} changed meanwhile; try again`);
    await this.addJoiners(rolloutId, decision, at, trx);
    for (const b of decision.batches) {
      await trx
        .updateTable('rollout_batches')
        .set({
          state: b.state,
          started_at: b.startedAt,
          bake_until: b.bakeUntil,
          finished_at: b.finishedAt,
          ...(b.health && { health: JSON.stringify(b.health) }),
        })
        .where('rollout_id', '=', rolloutId)
        .where('number', '=', b.number)
        .execute();
    }
    // Devices that change the same way (a batch being notified, a batch passing) share one
    // statement per 500: starting a batch of 5,000 devices is 10 statements, not 5,000.
    const groups = new Map<string, { change: Decision['devices'][number]; uuids: string[] }>();
    for (const d of decision.devices) {
      const key = JSON.stringify([d.state, d.reason, d.bytesSent, d.notifiedAt, d.deadline]);
      const group = groups.get(key);
      if (group) group.uuids.push(d.uuid);
      else groups.set(key, { change: d, uuids: [d.uuid] });
    }
    for (const { change: d, uuids } of groups.values()) {
      for (let i = 0; i < uuids.length; i += UUIDS) {
        await trx
          .updateTable('rollout_devices')
          .set({
            state: d.state,
            reason: d.reason,
            bytes_sent: d.bytesSent,
            notified_at: d.notifiedAt,
            deadline: d.deadline,
            updated_at: at,
          })
          .where('rollout_id', '=', rolloutId)
          .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
          .execute();
      }
    }
  }

  /** Writes a step's late joiners as pending devices of their batch (adding the batch if new). */
  private async addJoiners(
    rolloutId: string,
    decision: Decision,
    at: string,
    trx: Transaction<Database>,
  ): Promise<void> {
    const joined = decision.joined ?? [];
    if (joined.length === 0) return;
    const added = new Set(decision.addedBatches ?? []);
    const sizes = new Map<number, number>();
    for (const d of joined) sizes.set(d.batch, (sizes.get(d.batch) ?? 0) + 1);
    for (const [number, size] of sizes) {
      if (added.has(number))
        await trx
          .insertInto('rollout_batches')
          .values({
            rollout_id: rolloutId,
            number,
            state: 'pending',
            size,
            started_at: null,
            bake_until: null,
            finished_at: null,
          })
          .execute();
      else
        await trx
          .updateTable('rollout_batches')
          .set({ size: sql<number>`size + ${size}` })
          .where('rollout_id', '=', rolloutId)
          .where('number', '=', number)
          .execute();
    }
    for (let i = 0; i < joined.length; i += CHUNK) {
      await trx
        .insertInto('rollout_devices')
        .values(joined.slice(i, i + CHUNK).map((d) => pendingDeviceRow(rolloutId, d, at)))
        .execute();
    }
    const bytes = joined.reduce(
      (s, d) => ({ projected: s.projected + d.projectedBytes, full: s.full + d.fullBytes }),
      { projected: 0, full: 0 },
    );
    await trx
      .updateTable('rollouts')
      .set({
        projected_bytes: sql<number>`projected_bytes + ${bytes.projected}`,
        full_bytes: sql<number>`full_bytes + ${bytes.full}`,
      })
      .where('id', '=', rolloutId)
      .execute();
  }

  async fromReleasesOf(rolloutId: string, uuids: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    for (let i = 0; i < uuids.length; i += UUIDS) {
      const rows = await this.db
        .selectFrom('rollout_devices')
        .select(['device_uuid', 'from_release_id'])
        .where('rollout_id', '=', rolloutId)
        .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
        .execute();
      for (const row of rows) out.set(row.device_uuid, row.from_release_id);
    }
    return out;
  }

  /** Sets devices' projected bytes. Leaves `updated_at` alone: this is not a state change. */
  async setProjected(rolloutId: string, uuids: string[], bytes: number): Promise<void> {
    for (let i = 0; i < uuids.length; i += UUIDS) {
      await this.db
        .updateTable('rollout_devices')
        .set({ projected_bytes: bytes })
        .where('rollout_id', '=', rolloutId)
        .where('device_uuid', 'in', uuids.slice(i, i + UUIDS))
        .execute();
    }
  }

  async refreshProjectedTotal(rolloutId: string): Promise<void> {
    const row = await this.db
      .selectFrom('rollout_devices')
      .select((eb) => eb.fn.sum<number | string>('projected_bytes').as('total'))
      .where('rollout_id', '=', rolloutId)
      .executeTakeFirst();
    await this.db
      .updateTable('rollouts')
      .set({ projected_bytes: Number(row?.total ?? 0) })
      .where('id', '=', rolloutId)
      .execute();
  }

  async devices(rolloutId: string): Promise<RolloutDeviceRecord[]> {
    const rows = await this.db
      .selectFrom('rollout_devices')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .orderBy('batch')
      .orderBy('device_uuid')
      .execute();
    return rows.map((r) => ({
      uuid: r.device_uuid,
      name: r.name,
      batch: r.batch,
      state: r.state as RolloutDeviceState,
      fromReleaseId: r.from_release_id,
      projectedBytes: Number(r.projected_bytes),
      fullBytes: Number(r.full_bytes),
      bytesSent: Number(r.bytes_sent),
      reason: r.reason,
      deadline: r.deadline,
      updatedAt: r.updated_at,
    }));
  }

  async batches(rolloutId: string): Promise<(EngineBatch & { size: number })[]> {
    const rows = await this.db
      .selectFrom('rollout_batches')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .orderBy('number')
      .execute();
    return rows.map((b) => ({ ...toBatch(b), size: b.size }));
  }
}
