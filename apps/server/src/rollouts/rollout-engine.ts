import {
  BatchState,
  DeviceCounts,
  FAILED_DEVICE_STATES,
  HealthVerdict,
  isWindowWait,
  RolloutDeviceState,
  RolloutState,
  RolloutStrategy,
} from '@ferry/protocol';
import { HealthWindow, judgeHealth } from './health-comparison';
import { IN_FLIGHT, assertTransition, isTerminalRollout } from './rollout-states';

/** What the database says a device last reported (devices table), as the engine reads it. */
export interface EngineReport {
  /** False when the device was deprovisioned. */
  exists: boolean;
  status: string | null;
  /** The release the last report is about. */
  releaseId: string | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  error: string | null;
  /** When the server received the last report (ISO). */
  at: string | null;
}

export interface EngineDevice {
  uuid: string;
  batch: number;
  state: RolloutDeviceState;
  fromReleaseId: string | null;
  /** When the device was last told a target (the release, or its old one when rolling back). */
  notifiedAt: string | null;
  deadline: string | null;
  bytesSent: number;
  reason: string | null;
  report: EngineReport;
}

export interface EngineBatch {
  number: number;
  state: BatchState;
  startedAt: string | null;
  bakeUntil: string | null;
  finishedAt: string | null;
  /** The control-group verdict given when its bake ended. */
  health?: HealthVerdict | null;
}

export interface EngineRollout {
  id: string;
  state: RolloutState;
  releaseId: string;
  strategy: RolloutStrategy;
  currentBatch: number;
  reason: string | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface RolloutSnapshot {
  rollout: EngineRollout;
  batches: EngineBatch[];
  devices: EngineDevice[];
  /** Deltas of the release are queued or being built (read only when the strategy waits for them). */
  deltasPending?: boolean;
  /**
   * Devices the rollout covers now but does not list (registered, or newly matching its tag filter,
   * after it started), in the order the rollout's seed draws them. The step adds them to its next batch.
   */
  joiners?: EngineJoiner[];
  /**
   * The current batch's updated devices and control group over its bake window (read only when the
   * strategy compares health and the bake has ended; see {@link healthWindowNeeded}).
   */
  health?: HealthWindow;
}

/** A late joiner: the engine only places it; name and bytes travel with it to be written. */
export interface EngineJoiner {
  uuid: string;
  name: string;
  fromReleaseId: string | null;
  projectedBytes: number;
  fullBytes: number;
}

/** A late joiner as a step placed it. */
export interface JoinedDevice extends EngineJoiner {
  batch: number;
}

export interface DeviceChange {
  uuid: string;
  state: RolloutDeviceState;
  reason: string | null;
  bytesSent: number;
  notifiedAt: string | null;
  deadline: string | null;
  /** Set when the device must be told this release (its new target): the effect after the write. */
  notify: string | null;
}

/** The changes one step makes. Persist them all, then carry out the `notify` effects. */
export interface Decision {
  rollout: EngineRollout | null;
  /** Batches whose state changed; those listed in `addedBatches` are new (write them first). */
  batches: EngineBatch[];
  /** Late joiners added as `pending` to a batch (write them before `devices`, which may tell them). */
  joined?: JoinedDevice[];
  /** Batches added for late joiners when no batch was left to start. */
  addedBatches?: number[];
  devices: DeviceChange[];
}

export type OperatorAction = 'pause' | 'resume' | 'abort';

const iso = (ms: number): string => new Date(ms).toISOString();

/** Counts devices by state. */
export function countStates(devices: readonly { state: RolloutDeviceState }[]): DeviceCounts {
  const counts: DeviceCounts = {};
  for (const d of devices) counts[d.state] = (counts[d.state] ?? 0) + 1;
  return counts;
}

/** Failed share of a batch in percent; canceled devices do not count. */
export function failurePercent(devices: readonly { state: RolloutDeviceState }[]): number {
  const counted = devices.filter((d) => d.state !== 'canceled');
  if (counted.length === 0) return 0;
  const failed = counted.filter((d) => FAILED_DEVICE_STATES.includes(d.state)).length;
  return (failed * 100) / counted.length;
}

/**
 * Works on a copy of a snapshot and records each change after checking it against the transition table.
 */
class Step {
  readonly rollout: EngineRollout;
  readonly batches: EngineBatch[];
  readonly devices: EngineDevice[];
  private rolloutChanged = false;
  private readonly changedBatches = new Set<number>();
  private readonly addedBatches: number[] = [];
  private readonly joined: JoinedDevice[] = [];
  private readonly changedDevices = new Map<string, string | null>();

  constructor(
    snapshot: RolloutSnapshot,
    readonly now: number,
  ) {
    this.rollout = { ...snapshot.rollout };
    this.batches = snapshot.batches.map((b) => ({ ...b }));
    this.devices = snapshot.devices.map((d) => ({ ...d }));
  }

  setRollout(state: RolloutState, reason: string | null): void {
    assertTransition('rollout', this.rollout.state, state);
    this.rollout.state = state;
    this.rollout.reason = reason;
    if (isTerminalRollout(state)) this.rollout.finishedAt = iso(this.now);
    this.rolloutChanged = true;
  }

  setCurrentBatch(n: number): void {
    this.rollout.currentBatch = n;
    this.rolloutChanged = true;
  }

  setBatch(batch: EngineBatch, state: BatchState, patch: Partial<EngineBatch> = {}): void {
    assertTransition('batch', batch.state, state);
    batch.state = state;
    Object.assign(batch, patch);
    if (state === 'passed' || state === 'failed' || state === 'canceled') batch.finishedAt = iso(this.now);
    this.changedBatches.add(batch.number);
  }

  setDevice(
    device: EngineDevice,
    state: RolloutDeviceState,
    patch: Partial<Pick<EngineDevice, 'reason' | 'bytesSent' | 'notifiedAt' | 'deadline'>> = {},
    notify: string | null = null,
  ): void {
    if (device.state !== state) assertTransition('device', device.state, state);
    device.state = state;
    Object.assign(device, patch);
    const previous = this.changedDevices.get(device.uuid) ?? null;
    this.changedDevices.set(device.uuid, notify ?? previous);
  }

  /** Records a field change that is not a state change (bytes). */
  touchDevice(device: EngineDevice, patch: Partial<Pick<EngineDevice, 'bytesSent' | 'reason'>>): void {
    Object.assign(device, patch);
    if (!this.changedDevices.has(device.uuid)) this.changedDevices.set(device.uuid, null);
  }

  /** Adds a late joiner as `pending` to batch `n`, adding that batch first when it does not exist. */
  join(joiner: EngineJoiner, n: number): void {
    if (!this.batches.some((b) => b.number === n)) {
      this.batches.push({ number: n, state: 'pending', startedAt: null, bakeUntil: null, finishedAt: null });
      this.addedBatches.push(n);
    }
    this.joined.push({ ...joiner, batch: n });
    this.devices.push({
      uuid: joiner.uuid,
      batch: n,
      state: 'pending',
      fromReleaseId: joiner.fromReleaseId,
      notifiedAt: null,
      deadline: null,
      bytesSent: 0,
      reason: null,
      report: {
        exists: true,
        status: null,
        releaseId: null,
        bytesDone: null,
        bytesTotal: null,
        error: null,
        at: null,
      },
    });
  }

  batchDevices(n: number): EngineDevice[] {
    return this.devices.filter((d) => d.batch === n);
  }

  decision(): Decision {
    return {
      rollout: this.rolloutChanged ? this.rollout : null,
      batches: this.batches.filter((b) => this.changedBatches.has(b.number)),
      ...(this.joined.length > 0 ? { joined: this.joined, addedBatches: this.addedBatches } : {}),
      devices: this.devices
        .filter((d) => this.changedDevices.has(d.uuid))
        .map((d) => ({
          uuid: d.uuid,
          state: d.state,
          reason: d.reason,
          bytesSent: d.bytesSent,
          notifiedAt: d.notifiedAt,
          deadline: d.deadline,
          notify: this.changedDevices.get(d.uuid) ?? null,
        })),
    };
  }
}

/** Whether a report arrived after the device was told its current target. */
function fresh(device: EngineDevice): boolean {
  return device.report.at !== null && device.notifiedAt !== null && device.report.at >= device.notifiedAt;
}

const UPDATING_STATUSES = new Set(['downloading', 'downloaded', 'installing', 'starting', 'deferred']);

/** What a watched device's latest report and the clock mean for it. */
function observeDevice(step: Step, device: EngineDevice, releaseId: string, timeoutMs: number): void {
  const report = device.report;
  if (!report.exists) {
    if (device.state !== 'rolling_back')
      step.setDevice(device, 'canceled', { reason: 'device deprovisioned' });
    return;
  }
  const about = report.releaseId;
  if (device.state === 'rolling_back') {
    if (fresh(device) && report.status === 'running' && about === device.fromReleaseId)
      step.setDevice(device, 'rolled_back');
    return;
  }
  if (fresh(device)) {
    const bytes = Math.max(device.bytesSent, report.bytesDone ?? 0);
    if (report.status === 'failed' && (about === null || about === releaseId)) {
      const prefix = device.state === 'verifying' ? 'failed while baking: ' : '';
      step.setDevice(device, 'failed', { reason: `${prefix}${report.error ?? 'device reported failed'}` });
      return;
    }
    if (report.status === 'rolled_back') {
      step.setDevice(device, 'failed', {
        reason: `device rolled itself back${report.error ? `: ${report.error}` : ''}`,
      });
      return;
    }
    if (device.state === 'verifying') {
      if (report.status === 'running' && about !== null && about !== releaseId)
        step.setDevice(device, 'failed', { reason: `went back to release ${about} while baking` });
      return;
    }
    if (report.status === 'running' && about === releaseId) {
      // Up on the release: the timeout no longer applies; the bake judges it now.
      step.setDevice(device, 'verifying', {
        bytesSent: Math.max(bytes, report.bytesTotal ?? 0),
        reason: null,
        deadline: null,
      });
      return;
    }
    if (report.status !== null && UPDATING_STATUSES.has(report.status) && about === releaseId) {
      if (device.state !== 'updating') step.setDevice(device, 'updating', { bytesSent: bytes });
      else if (bytes !== device.bytesSent) step.touchDevice(device, { bytesSent: bytes });
      const waiting = report.status === 'deferred' && isWindowWait(report.error);
      if (waiting) {
        // Waiting for its download or maintenance window (maybe days away): not timed out meanwhile.
        if (device.deadline !== null || device.reason !== report.error)
          step.setDevice(device, 'updating', { deadline: null, reason: report.error });
      } else if (device.deadline === null && isWindowWait(device.reason)) {
        // Its window opened: the timeout runs again, from now.
        step.setDevice(device, 'updating', { deadline: iso(step.now + timeoutMs), reason: null });
      }
      const deferred = report.status === 'deferred' && report.error ? `deferred: ${report.error}` : null;
      if (!waiting && deferred && deferred !== device.reason) step.touchDevice(device, { reason: deferred });
    }
  }
  if (
    IN_FLIGHT.includes(device.state) &&
    device.deadline !== null &&
    step.now >= Date.parse(device.deadline)
  ) {
    step.setDevice(device, 'timed_out', {
      reason: `no running report within ${timeoutMs / 1000} s${report.status ? ` (last: ${report.status})` : ''}`,
    });
  }
}

/** Sends a failed device back to the release it ran, when there is one. */
function rollBack(step: Step, device: EngineDevice): void {
  if (device.fromReleaseId === null) {
    if (device.reason && !device.reason.includes('no earlier release'))
      step.touchDevice(device, { reason: `${device.reason} (no earlier release to roll back to)` });
    return;
  }
  step.setDevice(
    device,
    'rolling_back',
    { notifiedAt: iso(step.now), deadline: null, reason: device.reason ?? 'rolled back with its batch' },
    device.fromReleaseId,
  );
}

function startBatch(step: Step, batch: EngineBatch): void {
  step.setBatch(batch, 'running', { startedAt: iso(step.now) });
  step.setCurrentBatch(batch.number);
  notifyPending(step, batch);
}

/**
 * Tells the batch's devices not told yet, at most `maxDevicesPerMinute` in any minute (AWS IoT Jobs'
 * constant rollout rate); the rest wait for the next steps.
 */
function notifyPending(step: Step, batch: EngineBatch): void {
  const { strategy, releaseId } = step.rollout;
  const pending = step
    .batchDevices(batch.number)
    .filter((d) => d.state === 'pending')
    .sort((a, b) => a.uuid.localeCompare(b.uuid));
  if (pending.length === 0) return;
  let allowance = pending.length;
  if (strategy.maxDevicesPerMinute) {
    const since = step.now - 60_000;
    const recent = step.devices.filter(
      (d) =>
        d.notifiedAt !== null &&
        Date.parse(d.notifiedAt) > since &&
        d.state !== 'rolling_back' &&
        d.state !== 'rolled_back',
    ).length;
    allowance = Math.max(0, strategy.maxDevicesPerMinute - recent);
  }
  const deadline = iso(step.now + strategy.deviceTimeoutSeconds * 1000);
  for (const device of pending.slice(0, allowance))
    step.setDevice(device, 'notified', { notifiedAt: iso(step.now), deadline }, releaseId);
}

/**
 * Late joiners go to the rollout's next batch: the first one not started yet, or, when every batch
 * has started, a new batch after the last (it starts once the current one passed, like any other).
 */
function placeJoiners(step: Step, joiners: readonly EngineJoiner[]): void {
  const listed = new Set(step.devices.map((d) => d.uuid));
  const newcomers = joiners.filter((j) => !listed.has(j.uuid));
  if (newcomers.length === 0) return;
  const next = step.batches.filter((b) => b.state === 'pending').sort((a, b) => a.number - b.number)[0];
  const n = next?.number ?? Math.max(0, ...step.batches.map((b) => b.number)) + 1;
  for (const joiner of newcomers) step.join(joiner, n);
}

/**
 * Fails a batch (sending it back when the strategy says `batch`) and pauses or aborts the rollout.
 */
function failBatch(step: Step, batch: EngineBatch, reason: string, action: 'pause' | 'abort'): void {
  step.setBatch(batch, 'failed');
  if (step.rollout.strategy.rollback === 'batch') {
    for (const device of step.batchDevices(batch.number))
      if (['notified', 'updating', 'verifying'].includes(device.state)) rollBack(step, device);
  }
  if (action === 'abort') {
    step.setRollout('aborted', reason);
    cancelPending(step);
  } else if (step.rollout.state === 'running') step.setRollout('paused', reason);
}

/**
 * Whether the next step judges the current batch against its control group: the strategy compares
 * health and the batch's bake has ended. The caller then reads {@link RolloutSnapshot.health}.
 */
export function healthWindowNeeded(snapshot: RolloutSnapshot, now: number): EngineBatch | null {
  const { rollout } = snapshot;
  if (!rollout.strategy.healthComparison || isTerminalRollout(rollout.state)) return null;
  const batch = snapshot.batches.find((b) => b.number === rollout.currentBatch);
  if (batch?.state !== 'baking' || batch.bakeUntil === null || now < Date.parse(batch.bakeUntil)) return null;
  return batch;
}

function cancelPending(step: Step): void {
  for (const batch of step.batches) if (batch.state === 'pending') step.setBatch(batch, 'canceled');
  for (const device of step.devices)
    if (device.state === 'pending') step.setDevice(device, 'canceled', { reason: 'rollout aborted' });
}

/**
 * One step of a rollout: reads device reports and the clock, moves devices, judges the current batch,
 * starts the next one, and finishes the rollout. Pure: the same snapshot and clock give the same
 * decision, so a restarted server picks up exactly where the database says it was.
 */
export function decide(snapshot: RolloutSnapshot, now: number): Decision {
  const step = new Step(snapshot, now);
  const { rollout } = step;
  if (isTerminalRollout(rollout.state)) return step.decision();
  const { strategy } = rollout;
  const timeoutMs = strategy.deviceTimeoutSeconds * 1000;
  placeJoiners(step, snapshot.joiners ?? []);
  if (rollout.state === 'scheduled') {
    const start = scheduledStart(rollout);
    if (start !== null && now < start) return step.decision();
    step.setRollout('running', null);
  }

  for (const device of step.devices) {
    const before = device.state;
    if (before === 'pending' && !device.report.exists) {
      // Deprovisioned before its batch: it leaves the rollout rather than time out later.
      step.setDevice(device, 'canceled', { reason: 'device deprovisioned' });
      continue;
    }
    if (['notified', 'updating', 'verifying', 'rolling_back'].includes(before))
      observeDevice(step, device, rollout.releaseId, timeoutMs);
    if (
      strategy.rollback !== 'none' &&
      (device.state === 'failed' || device.state === 'timed_out') &&
      before !== device.state
    )
      rollBack(step, device);
  }

  const batch = step.batches.find((b) => b.number === rollout.currentBatch);
  if (batch && (batch.state === 'running' || batch.state === 'baking')) {
    const devices = step.batchDevices(batch.number);
    const failed = failurePercent(devices);
    if (failed > strategy.maxFailurePercent) {
      const reason = `batch ${batch.number} failed: ${failed.toFixed(0)} % of its devices failed (more than ${strategy.maxFailurePercent} %)`;
      failBatch(step, batch, reason, strategy.onFailure);
      return step.decision();
    }
    if (batch.state === 'running' && rollout.state === 'running') notifyPending(step, batch);
    if (
      batch.state === 'running' &&
      !devices.some((d) => IN_FLIGHT.includes(d.state) || d.state === 'pending')
    ) {
      step.setBatch(batch, 'baking', { bakeUntil: iso(now + strategy.bakeSeconds * 1000) });
    }
    if (batch.state === 'baking' && batch.bakeUntil !== null && now >= Date.parse(batch.bakeUntil)) {
      const comparison = strategy.healthComparison;
      if (comparison && snapshot.health) {
        const health = judgeHealth(snapshot.health, comparison, false);
        batch.health = health;
        if (health.verdict === 'worse') {
          failBatch(step, batch, `batch ${batch.number} ${health.summary}`, comparison.onWorse);
          return step.decision();
        }
      }
      step.setBatch(batch, 'passed');
      for (const device of devices) if (device.state === 'verifying') step.setDevice(device, 'succeeded');
    }
  }

  if (rollout.state !== 'running') return step.decision();
  const current = step.batches.find((b) => b.number === rollout.currentBatch);
  if (current && (current.state === 'running' || current.state === 'baking')) return step.decision();
  const next = step.batches.filter((b) => b.state === 'pending').sort((a, b) => a.number - b.number)[0];
  if (next) {
    const until = deltaWaitUntil({ ...snapshot, batches: step.batches });
    if (until !== null && now < until) return step.decision();
    startBatch(step, next);
    return step.decision();
  }
  const anyFailed = step.batches.some((b) => b.state === 'failed');
  step.setRollout(
    'completed',
    anyFailed ? 'completed after an operator resumed past a failed batch' : 'every batch passed',
  );
  return step.decision();
}

/** When a scheduled rollout starts (epoch ms), or null when it is not scheduled. */
export function scheduledStart(rollout: Pick<EngineRollout, 'state' | 'strategy'>): number | null {
  if (rollout.state !== 'scheduled' || rollout.strategy.startAt === undefined) return null;
  return Date.parse(rollout.strategy.startAt);
}

/**
 * Until when the next batch waits for deltas still being built (epoch ms), or null when it does not
 * wait: at most `waitForDeltasSeconds` after the rollout started or the last batch ended.
 */
export function deltaWaitUntil(snapshot: RolloutSnapshot): number | null {
  const wait = (snapshot.rollout.strategy.waitForDeltasSeconds ?? 0) * 1000;
  if (!snapshot.deltasPending || wait <= 0) return null;
  const ends = snapshot.batches.map((b) => (b.finishedAt ? Date.parse(b.finishedAt) : 0));
  return Math.max(Date.parse(snapshot.rollout.createdAt), ...ends) + wait;
}

/** What an operator's pause, resume or abort changes. Throws ConflictError when not allowed. */
export function operatorAction(snapshot: RolloutSnapshot, action: OperatorAction, now: number): Decision {
  const step = new Step(snapshot, now);
  switch (action) {
    case 'pause':
      step.setRollout('paused', 'paused by an operator');
      break;
    case 'resume':
      step.setRollout('running', null);
      break;
    case 'abort':
      step.setRollout('aborted', 'aborted by an operator');
      cancelPending(step);
      break;
  }
  return step.decision();
}
