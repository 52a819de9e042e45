import {
  DeviceCounts,
  FAILED_DEVICE_STATES,
  isWindowWait,
  HealthVerdict,
  RolloutDeviceView,
  RolloutView,
} from '@ferry/protocol';
import { EngineBatch, countStates, failurePercent } from './rollout-engine';
import { RolloutRecord } from './rollouts.repository';

/** Everything a rollout's view is made of, as stored. */
export interface RolloutViewParts {
  rollout: RolloutRecord;
  releaseVersion: number;
  batches: (EngineBatch & { size: number })[];
  devices: RolloutDeviceView[];
  history: { at: string; counts: DeviceCounts }[];
  /** The current batch's interim control-group verdict while it bakes. */
  interimHealth?: HealthVerdict | null;
}

/** Whether a device was deprovisioned while the rollout ran: it leaves the rollout's counts. */
function departed(device: RolloutDeviceView): boolean {
  return device.state === 'canceled' && device.reason === 'device deprovisioned';
}

/**
 * A rollout as the API shows it: counts by state per batch and in all, failure percentages, failures
 * with reasons, and bytes projected, sent and full. Pure: the same parts give the same view.
 */
export function rolloutView({
  rollout,
  releaseVersion,
  batches,
  devices,
  history,
  interimHealth,
}: RolloutViewParts): RolloutView {
  const counted = devices.filter((d) => !departed(d));
  return {
    id: rollout.id,
    fleetId: rollout.fleetId,
    releaseId: rollout.releaseId,
    releaseVersion,
    state: rollout.state,
    reason: rollout.reason,
    trigger: rollout.trigger,
    strategy: rollout.strategy,
    tagFilter: rollout.tagFilter,
    currentBatch: rollout.currentBatch,
    total: counted.length,
    batches: batches.map((b) => {
      const members = counted.filter((d) => d.batch === b.number);
      const interim = b.number === rollout.currentBatch && b.state === 'baking' ? interimHealth : null;
      return {
        ...b,
        size: members.length,
        health: b.health ?? interim ?? null,
        counts: countStates(members),
        failurePercent: failurePercent(members),
      };
    }),
    counts: countStates(counted),
    deprovisioned: devices.length - counted.length,
    waitingForWindow: counted.filter((d) => d.state === 'updating' && isWindowWait(d.reason)).length,
    failures: counted
      .filter((d) => FAILED_DEVICE_STATES.includes(d.state))
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
