import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import {
  ConflictError,
  CreateRollout,
  FAILED_DEVICE_STATES,
  FleetRolloutSettings,
  FleetSettingsInput,
  NotFoundError,
  PlannedDevice,
  Release,
  RolloutDeviceView,
  RolloutPlan,
  RolloutState,
  RolloutStrategy,
  RolloutStrategySchema,
  RolloutView,
  ValidationError,
} from '@ferry/protocol';
import { DeltasService } from '../deltas/deltas.service';
import { DevicesRepository } from '../devices/devices.repository';
import { EventBus } from '../events/event-bus.service';
import { FleetsService } from '../fleets/fleets.service';
import { ReleasesService } from '../releases/releases.service';
import {
  Decision,
  OperatorAction,
  countStates,
  decide,
  deltaWaitUntil,
  failurePercent,
  operatorAction,
} from './rollout-engine';
import {
  checkBatchSpec,
  projectDownload,
  releaseLayers,
  resolveBatches,
  selectDevices,
} from './rollout-planner';
import { RolloutNotices } from './rollout-notices.service';
import { RolloutRecord, RolloutsRepository } from './rollouts.repository';

/** Samples kept in a rollout's view (its chart). */
const HISTORY_SAMPLES = 500;
/** Device changes listed in one `rollout.updated` event. */
const MAX_CHANGED_IN_EVENT = 100;

/**
 * Rollouts: plans them (devices, batches, projected bytes), stores them, and moves them on one
 * {@link decide} step at a time, writing every change before telling any device.
 */
@Injectable()
export class RolloutsService {
  private readonly logger = new Logger(RolloutsService.name);
  /** Steps and operator actions of this process run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Per rollout, the fingerprint of the last step that changed nothing. Only a cache that spares
   * reading every device on every tick; losing it (a restart) costs one full step.
   */
  private readonly quiet = new Map<string, { key: string; wakeAt: number | null }>();

  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly fleets: FleetsService,
    private readonly releases: ReleasesService,
    private readonly devices: DevicesRepository,
    private readonly deltas: DeltasService,
    private readonly notices: RolloutNotices,
    private readonly bus: EventBus,
  ) {}

  /** The plan of a rollout: which devices, in which batch, and the bytes each would download. */
  async plan(fleetRef: string, input: CreateRollout): Promise<RolloutPlan> {
    const fleet = await this.fleets.get(fleetRef);
    const release = await this.releases.get(input.releaseId);
    if (release.fleetId !== fleet.id)
      throw new ValidationError(`release ${release.id} belongs to another fleet`, { field: 'releaseId' });
    checkBatchSpec(input.strategy.batches);
    const candidates = await this.devices.list({
      fleetId: fleet.id,
      limit: Number.MAX_SAFE_INTEGER,
      offset: 0,
    });
    const selection = selectDevices(candidates, release.id, input.tagFilter ?? null);
    const sizes = resolveBatches(input.strategy.batches, selection.eligible.length);
    const deltas = await this.deltas.listForRelease(release.id);
    const fromReleases = new Map<string, Release | null>();
    const planned: PlannedDevice[] = [];
    const projections = new Map<string, ReturnType<typeof projectDownload>>();
    let batch = 1;
    let left = sizes[0] ?? 0;
    for (const device of selection.eligible) {
      while (left === 0 && batch < sizes.length) {
        batch += 1;
        left = sizes[batch - 1] ?? 0;
      }
      left -= 1;
      // Devices on the same release download the same: projected once per release they run.
      const fromKey = device.releaseId ?? '';
      let projection = projections.get(fromKey);
      if (!projection) {
        const from = device.releaseId ? await this.release(device.releaseId, fromReleases) : null;
        projection = projectDownload(from, release, deltas);
        projections.set(fromKey, projection);
      }
      planned.push({
        uuid: device.uuid,
        name: device.name,
        batch,
        fromReleaseId: device.releaseId,
        online: device.online,
        ...projection,
      });
    }
    return {
      fleetId: fleet.id,
      releaseId: release.id,
      releaseVersion: release.version,
      strategy: input.strategy,
      tagFilter: input.tagFilter ?? null,
      batches: sizes.map((size, i) => ({ number: i + 1, size })),
      devices: planned,
      excluded: {
        pinned: selection.pinned,
        upToDate: selection.upToDate,
        filteredOut: selection.filteredOut,
      },
      bytes: {
        projected: planned.reduce((s, d) => s + d.projectedBytes, 0),
        full: planned.reduce((s, d) => s + d.fullBytes, 0),
      },
    };
  }

  /**
   * Starts a rollout (or only plans it, with `dryRun`). One rollout at a time per fleet: a second one
   * is refused with 409, unless `supersede` (track latest), which aborts the running one first.
   */
  async create(
    fleetRef: string,
    input: CreateRollout,
    options: { trigger?: RolloutRecord['trigger']; supersede?: boolean } = {},
  ): Promise<{ plan: RolloutPlan; rollout: RolloutView | null }> {
    const plan = await this.plan(fleetRef, input);
    if (input.dryRun) return { plan, rollout: null };
    await this.planDeltas(plan);
    // The check for an active rollout and the insert run as one step of this process, so two
    // concurrent requests cannot both start one.
    const rollout = await this.exclusive(async () => {
      const active = await this.rollouts.activeInFleet(plan.fleetId);
      if (active) {
        if (!options.supersede)
          throw new ConflictError(
            `fleet already has an active rollout ${active.id} (${active.state}); pause it, abort it or wait`,
            {
              rolloutId: active.id,
            },
          );
        await this.actNow(active.id, 'abort', `superseded by release v${plan.releaseVersion}`);
      }
      const now = new Date().toISOString();
      const empty = plan.devices.length === 0;
      const record: RolloutRecord = {
        id: randomUUID(),
        fleetId: plan.fleetId,
        releaseId: plan.releaseId,
        state: empty ? 'completed' : 'running',
        reason: empty ? 'no device needed this release' : null,
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
        { pending: plan.devices.length },
      );
      return record;
    });
    this.logger.log(
      `rollout ${rollout.id}: release v${plan.releaseVersion} to ${plan.devices.length} devices in ${plan.batches.length} batches`,
    );
    if (rollout.state === 'running') await this.step(rollout.id);
    return { plan, rollout: await this.view(rollout.id) };
  }

  async list(fleetRef: string, state: RolloutState | undefined, limit: number): Promise<RolloutView[]> {
    const fleet = await this.fleets.get(fleetRef);
    const records = await this.rollouts.listForFleet(fleet.id, state, limit);
    return Promise.all(records.map((r) => this.view(r.id, 0)));
  }

  async view(id: string, historySamples = HISTORY_SAMPLES): Promise<RolloutView> {
    const rollout = await this.get(id);
    const [release, batches, devices, history] = await Promise.all([
      this.releases.get(rollout.releaseId),
      this.rollouts.batches(id),
      this.rollouts.devices(id),
      historySamples > 0 ? this.rollouts.samples(id, historySamples) : Promise.resolve([]),
    ]);
    return {
      id: rollout.id,
      fleetId: rollout.fleetId,
      releaseId: rollout.releaseId,
      releaseVersion: release.version,
      state: rollout.state,
      reason: rollout.reason,
      trigger: rollout.trigger,
      strategy: rollout.strategy,
      tagFilter: rollout.tagFilter,
      currentBatch: rollout.currentBatch,
      total: devices.length,
      batches: batches.map((b) => {
        const members = devices.filter((d) => d.batch === b.number);
        return { ...b, counts: countStates(members), failurePercent: failurePercent(members) };
      }),
      counts: countStates(devices),
      failures: devices
        .filter(
          (d) =>
            FAILED_DEVICE_STATES.includes(d.state) ||
            (d.state === 'canceled' && d.reason === 'device deprovisioned'),
        )
        .map((d) => ({
          uuid: d.uuid,
          name: d.name,
          batch: d.batch,
          state: d.state,
          reason: d.reason,
          at: d.updatedAt,
        })),
      bytes: {
        projected: rollout.projectedBytes,
        sent: devices.reduce((s, d) => s + d.bytesSent, 0),
        full: rollout.fullBytes,
      },
      history,
      createdAt: rollout.createdAt,
      updatedAt: rollout.updatedAt,
      finishedAt: rollout.finishedAt,
    };
  }

  async deviceViews(id: string): Promise<RolloutDeviceView[]> {
    await this.get(id);
    return this.rollouts.devices(id);
  }

  /** An operator's pause, resume or abort: written first, then devices are told, then the next step runs. */
  async act(id: string, action: OperatorAction, reason?: string): Promise<RolloutView> {
    await this.exclusive(() => this.actNow(id, action, reason));
    if (action === 'resume') await this.step(id);
    return this.view(id);
  }

  private async actNow(id: string, action: OperatorAction, reason?: string): Promise<void> {
    const rollout = await this.get(id);
    const snapshot = await this.rollouts.snapshot(rollout);
    const decision = operatorAction(snapshot, action, Date.now());
    if (reason && decision.rollout) decision.rollout.reason = reason;
    await this.persist(rollout, snapshot.devices, decision);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
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
    await this.exclusive(() => this.stepNow(id, now ?? Date.now()));
  }

  private async stepNow(id: string, now: number): Promise<void> {
    const rollout = await this.get(id);
    if (rollout.state === 'running' || rollout.state === 'paused') {
      const deltasPending = await this.deltasPending(rollout);
      // Cheap check first: with no new report, no device gone, no deadline or bake end reached and
      // no write since the last step that changed nothing, a full step would change nothing either.
      const probe = await this.rollouts.probe(rollout);
      const key = `${rollout.updatedAt}|${probe.lastReportAt ?? ''}|${probe.present}|${deltasPending}`;
      const quiet = this.quiet.get(id);
      // A throttled batch (maxDevicesPerMinute) tells more devices as the minute moves on: no cache.
      const throttled = rollout.strategy.maxDevicesPerMinute !== undefined;
      if (throttled || quiet?.key !== key || (quiet.wakeAt !== null && now >= quiet.wakeAt)) {
        const snapshot = { ...(await this.rollouts.snapshot(rollout)), deltasPending };
        const decision = decide(snapshot, now);
        if (decision.rollout || decision.batches.length > 0 || decision.devices.length > 0) {
          this.quiet.delete(id);
          await this.persist(rollout, snapshot.devices, decision, now);
        } else {
          const wakes = [probe.wakeAt ? Date.parse(probe.wakeAt) : null, deltaWaitUntil(snapshot)].filter(
            (t): t is number => t !== null,
          );
          this.quiet.set(id, { key, wakeAt: wakes.length > 0 ? Math.min(...wakes) : null });
        }
      }
    } else {
      this.quiet.delete(id);
    }
    await this.notices.sendPending(id, rollout.releaseId);
  }

  /** Whether deltas of the release are still queued or building, when the strategy waits for them. */
  private async deltasPending(rollout: RolloutRecord): Promise<boolean> {
    if ((rollout.strategy.waitForDeltasSeconds ?? 0) <= 0 || rollout.state !== 'running') return false;
    const deltas = await this.deltas.listForRelease(rollout.releaseId);
    return deltas.some((d) => d.state === 'queued' || d.state === 'building');
  }

  async resendInFlight(id: string): Promise<void> {
    await this.rollouts.resendInFlightNotices(id);
  }

  async settings(fleetRef: string): Promise<FleetRolloutSettings> {
    const fleet = await this.fleets.get(fleetRef);
    const saved = await this.rollouts.settings(fleet.id);
    return {
      fleetId: fleet.id,
      trackLatest: saved?.trackLatest ?? false,
      defaultStrategy: saved?.defaultStrategy ?? RolloutStrategySchema.parse({}),
    };
  }

  async updateSettings(fleetRef: string, input: FleetSettingsInput): Promise<FleetRolloutSettings> {
    const current = await this.settings(fleetRef);
    const strategy: RolloutStrategy = input.defaultStrategy ?? current.defaultStrategy;
    checkBatchSpec(strategy.batches);
    const trackLatest = input.trackLatest ?? current.trackLatest;
    await this.rollouts.saveSettings(current.fleetId, trackLatest, strategy);
    return { fleetId: current.fleetId, trackLatest, defaultStrategy: strategy };
  }

  /** "Track latest": a pushed release starts a rollout with the fleet's default strategy. */
  async onReleasePushed(release: Release): Promise<void> {
    const saved = await this.rollouts.settings(release.fleetId);
    if (!saved?.trackLatest) return;
    const { rollout } = await this.create(
      release.fleetId,
      { releaseId: release.id, strategy: saved.defaultStrategy, dryRun: false },
      { trigger: 'track-latest', supersede: true },
    );
    this.logger.log(
      `fleet ${release.fleetId} tracks the latest release: rollout ${rollout?.id ?? '-'} started`,
    );
  }

  private async get(id: string): Promise<RolloutRecord> {
    const rollout = await this.rollouts.find(id);
    if (!rollout) throw new NotFoundError(`no rollout ${id}`);
    return rollout;
  }

  private async persist(
    rollout: RolloutRecord,
    before: { uuid: string; state: string; batch: number }[],
    decision: Decision,
    now = Date.now(),
  ): Promise<void> {
    const states = new Map(before.map((d) => [d.uuid, d.state]));
    const stateChanged = decision.devices.some((d) => states.get(d.uuid) !== d.state);
    for (const d of decision.devices) states.set(d.uuid, d.state);
    const counts =
      stateChanged || decision.rollout
        ? countStates([...states.values()].map((state) => ({ state: state as never })))
        : null;
    // Never the same timestamp as the snapshot's: the next writer's optimistic check must see a change.
    const at = new Date(Math.max(now, Date.parse(rollout.updatedAt) + 1)).toISOString();
    await this.rollouts.apply(rollout.id, rollout.updatedAt, decision, at, counts);
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

  private async release(id: string, cache: Map<string, Release | null>): Promise<Release | null> {
    if (!cache.has(id)) cache.set(id, await this.releases.get(id).catch(() => null));
    return cache.get(id) ?? null;
  }

  /** Asks for the deltas from every release the covered devices run (built once per base→target pair). */
  private async planDeltas(plan: RolloutPlan): Promise<void> {
    const target = await this.releases.get(plan.releaseId);
    const froms = new Set(plan.devices.map((d) => d.fromReleaseId).filter((id): id is string => id !== null));
    for (const id of froms) {
      try {
        const from = await this.releases.get(id);
        if (releaseLayers(target).some((l) => !releaseLayers(from).some((f) => f.diffId === l.diffId)))
          await this.deltas.planBetween(from, target);
      } catch (error) {
        this.logger.warn(`deltas from release ${id} not planned: ${(error as Error).message}`);
      }
    }
  }
}
