import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ConflictError, CreateRollout, NotFoundError, RolloutPlan } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FerryConfig } from '../config/config';
import { FERRY_CONFIG } from '../config/config.module';
import { TransactionRepository } from '../database/transaction.repository';
import { isUniqueViolation } from '../database/unique-violation';
import { EventBus } from '../events/event-bus.service';
import {
  Decision,
  OperatorAction,
  countStates,
  decide,
  deltaWaitUntil,
  healthWindowNeeded,
  operatorAction,
  scheduledStart,
} from './rollout-engine';
import { RolloutHealthService } from './rollout-health.service';
import { RolloutLockRepository } from './rollout-lock.repository';
import { RolloutNotices } from './rollout-notices.service';
import { RolloutNoticesRepository } from './rollout-notices.repository';
import { RolloutPlanningService } from './rollout-planning.service';
import { RolloutSamplesRepository } from './rollout-samples.repository';
import { RolloutRecord, RolloutsRepository } from './rollouts.repository';

/** Device changes listed in one `rollout.updated` event. */
const MAX_CHANGED_IN_EVENT = 100;

/**
 * Runs rollouts: creates them from a plan, and moves them on one {@link decide} step (or operator
 * action) at a time, writing every change (state, notice outbox, count sample) in one transaction
 * before telling any device. The only caller of the engine.
 */
@Injectable()
export class RolloutRunningService {
  private readonly logger = new Logger(RolloutRunningService.name);
  /** Steps and operator actions of this process run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Per rollout, the fingerprint of the last step that changed nothing. Only a cache that spares
   * reading every device on every tick; losing it (a restart) costs one full step.
   */
  private readonly quiet = new Map<string, { key: string; wakeAt: number | null }>();

  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly outbox: RolloutNoticesRepository,
    private readonly samples: RolloutSamplesRepository,
    private readonly transactions: TransactionRepository,
    private readonly planning: RolloutPlanningService,
    private readonly notices: RolloutNotices,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    private readonly lock: RolloutLockRepository,
    private readonly health: RolloutHealthService,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * Plans and starts a rollout. One rollout at a time per fleet: a second one is refused with 409,
   * unless `supersede` (track latest), which aborts the running one first.
   */
  async create(
    fleetRef: string,
    input: CreateRollout,
    options: { trigger?: RolloutRecord['trigger']; supersede?: boolean } = {},
  ): Promise<{ plan: RolloutPlan; rollout: RolloutRecord }> {
    const plan = await this.planning.plan(fleetRef, input);
    await this.planning.planDeltas(plan);
    // The check for an active rollout and the insert run as one step of this process, so two
    // concurrent requests cannot both start one.
    const rollout = await this.exclusive(async () => {
      const active = await this.rollouts.activeInFleet(plan.fleetId);
      if (active) {
        if (!options.supersede)
          throw new ConflictError(
            active.state === 'paused'
              ? `rollout ${active.id} of this fleet is paused: resume or abort it first`
              : active.state === 'scheduled'
                ? `rollout ${active.id} of this fleet is scheduled: abort it first`
                : `rollout ${active.id} of this fleet is running: wait for it to finish, or abort it first`,
            { rolloutId: active.id, state: active.state },
          );
        await this.actNow(active.id, 'abort', `superseded by release v${plan.releaseVersion}`);
      }
      const now = this.clock.iso();
      const empty = plan.devices.length === 0;
      const startAt = plan.strategy.startAt;
      const scheduled = startAt !== undefined && Date.parse(startAt) > Date.parse(now);
      const record: RolloutRecord = {
        id: randomUUID(),
        fleetId: plan.fleetId,
        releaseId: plan.releaseId,
        state: scheduled ? 'scheduled' : empty ? 'completed' : 'running',
        reason: scheduled
          ? `scheduled to start at ${startAt}`
          : empty
            ? 'no device needed this release'
            : null,
        trigger: options.trigger ?? 'manual',
        strategy: plan.strategy,
        tagFilter: plan.tagFilter,
        currentBatch: 0,
        projectedBytes: plan.bytes.projected,
        fullBytes: plan.bytes.full,
        createdAt: now,
        updatedAt: now,
        finishedAt: empty ? now : null,
      };
      await this.transactions
        .run(async (trx) => {
          await this.rollouts.insert(
            {
              rollout: record,
              batches: plan.batches,
              devices: plan.devices.map((d) => ({
                uuid: d.uuid,
                name: d.name,
                batch: d.batch,
                fromReleaseId: d.fromReleaseId,
                projectedBytes: d.projectedBytes,
                fullBytes: d.fullBytes,
              })),
            },
            trx,
          );
          await this.samples.add(record.id, now, { pending: plan.devices.length }, trx);
        })
        .catch((error: unknown) => {
          // Another server process started one for this fleet meanwhile: the database refuses a second.
          if (isUniqueViolation(error))
            throw new ConflictError(
              'fleet already has an active rollout (started by another server meanwhile); pause it, abort it or wait',
            );
          throw error;
        });
      return record;
    });
    await this.rollouts.refreshStatistics(plan.devices.length);
    this.logger.log(
      `rollout ${rollout.id}: release v${plan.releaseVersion} to ${plan.devices.length} devices in ${plan.batches.length} batches`,
    );
    if (rollout.state === 'running' || rollout.state === 'scheduled') await this.step(rollout.id);
    return { plan, rollout };
  }

  /** An operator's pause, resume or abort: written first, then devices are told, then the next step runs. */
  async act(id: string, action: OperatorAction, reason?: string): Promise<void> {
    await this.exclusive(() => this.actNow(id, action, reason));
    if (action === 'resume') await this.step(id);
  }

  /** All rollouts the engine must still move on. */
  async active(): Promise<RolloutRecord[]> {
    return this.rollouts.active();
  }

  /**
   * One engine step for one rollout: re-read it from the database, decide, write, then tell devices.
   * Notices a crash left unsent are sent here too.
   */
  async step(id: string, now?: number): Promise<void> {
    // Only the rollout leader steps: another replica's step would send the same notices again. When
    // another process leads, it takes this rollout at its next tick.
    await this.lock.run(() => this.exclusive(() => this.stepNow(id, now ?? this.clock.nowMs())));
  }

  /** After a restart: every device still on its way is told its target again by the next step. */
  async resendInFlight(id: string): Promise<void> {
    await this.outbox.resendInFlight(id);
  }

  private async actNow(id: string, action: OperatorAction, reason?: string): Promise<void> {
    const rollout = await this.get(id);
    const snapshot = await this.rollouts.snapshot(rollout);
    const now = this.clock.nowMs();
    const decision = operatorAction(snapshot, action, now);
    if (reason && decision.rollout) decision.rollout.reason = reason;
    await this.persist(rollout, snapshot.devices, decision, now);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async stepNow(id: string, now: number): Promise<void> {
    const rollout = await this.get(id);
    if (rollout.state === 'scheduled' || rollout.state === 'running' || rollout.state === 'paused') {
      const deltasPending = await this.planning.deltasPending(rollout);
      const joiners = await this.planning.joiners(rollout);
      // Cheap check first: with no new report, no device gone, no deadline or bake end reached and
      // no write since the last step that changed nothing, a full step would change nothing either.
      const probe = await this.rollouts.probe(rollout);
      const key = `${rollout.updatedAt}|${probe.reports}|${probe.present}|${deltasPending}`;
      const quiet = this.quiet.get(id);
      // A throttled batch (maxDevicesPerMinute) tells more devices as the minute moves on: no cache.
      const throttled = rollout.strategy.maxDevicesPerMinute !== undefined;
      const joining = joiners.length > 0;
      if (throttled || joining || quiet?.key !== key || (quiet.wakeAt !== null && now >= quiet.wakeAt)) {
        const snapshot = { ...(await this.rollouts.snapshot(rollout)), deltasPending, joiners };
        const judged = healthWindowNeeded(snapshot, now);
        if (judged) {
          const present = snapshot.devices.filter((d) => d.report.exists);
          const window = await this.health.window(judged, rollout.strategy.bakeSeconds, present, now);
          if (window) snapshot.health = window;
        }
        const decision = decide(snapshot, now);
        if (
          decision.rollout ||
          decision.batches.length > 0 ||
          decision.devices.length > 0 ||
          decision.joined
        ) {
          this.quiet.delete(id);
          await this.persist(rollout, snapshot.devices, decision, now);
        } else {
          const wakes = [
            probe.wakeAt ? Date.parse(probe.wakeAt) : null,
            deltaWaitUntil(snapshot),
            scheduledStart(snapshot.rollout),
          ].filter((t): t is number => t !== null);
          this.quiet.set(id, { key, wakeAt: wakes.length > 0 ? Math.min(...wakes) : null });
        }
      }
      // Devices told but silent since: a notice acknowledged by the broker can still be lost.
      if (probe.resendAt !== null && now >= Date.parse(probe.resendAt)) {
        const resent = await this.outbox.resendSilent(id, now, this.config.noticeResendMs);
        if (resent > 0) this.logger.log(`rollout ${id}: telling ${resent} silent device(s) again`);
      }
    } else {
      this.quiet.delete(id);
    }
    await this.notices.sendPending(id, rollout.releaseId);
  }

  private async get(id: string): Promise<RolloutRecord> {
    const rollout = await this.rollouts.find(id);
    if (!rollout) throw new NotFoundError(`no rollout ${id}`);
    return rollout;
  }

  /** Writes a decision (state, outbox, sample) in one transaction, then announces it on the bus. */
  private async persist(
    rollout: RolloutRecord,
    before: { uuid: string; state: string; batch: number }[],
    decision: Decision,
    now: number,
  ): Promise<void> {
    const states = new Map(before.map((d) => [d.uuid, d.state]));
    const stateChanged = decision.devices.some((d) => states.get(d.uuid) !== d.state);
    for (const d of decision.devices) states.set(d.uuid, d.state);
    for (const d of decision.joined ?? []) if (!states.has(d.uuid)) states.set(d.uuid, 'pending');
    const counts =
      stateChanged || decision.joined || decision.rollout
        ? countStates([...states.values()].map((state) => ({ state: state as never })))
        : null;
    // Never the same timestamp as the snapshot's: the next writer's optimistic check must see a change.
    const at = new Date(Math.max(now, Date.parse(rollout.updatedAt) + 1)).toISOString();
    const notices = decision.devices.flatMap((d) =>
      d.notify ? [{ uuid: d.uuid, releaseId: d.notify }] : [],
    );
    await this.transactions.run(async (trx) => {
      await this.rollouts.apply(rollout.id, rollout.updatedAt, decision, at, trx);
      if (notices.length > 0) {
        const dueAt = new Date(Date.parse(at) + this.config.noticeResendMs).toISOString();
        await this.outbox.enqueue(rollout.id, notices, dueAt, trx);
      }
      if (counts) await this.samples.add(rollout.id, at, counts, trx);
    });
    const after = decision.rollout ?? rollout;
    this.bus.publish([
      {
        type: 'rollout.updated',
        fleetId: rollout.fleetId,
        at: new Date(now).toISOString(),
        data: {
          id: rollout.id,
          releaseId: rollout.releaseId,
          state: after.state,
          reason: after.reason,
          currentBatch: after.currentBatch,
          counts: counts ?? countStates([...states.values()].map((state) => ({ state: state as never }))),
          // Capped: starting a batch of 10,000 devices must not make one 10,000-entry event.
          changed: decision.devices
            .slice(0, MAX_CHANGED_IN_EVENT)
            .map((d) => ({ uuid: d.uuid, state: d.state, bytesSent: d.bytesSent })),
          changedCount: decision.devices.length,
        },
      },
    ]);
  }
}
