import type { RolloutDeviceState, RolloutDeviceView, RolloutView } from '@ferry/protocol';

import { plural, time } from '../support/format';

/** Devices told about the release that have not reported running it yet. */
const TOLD: readonly RolloutDeviceState[] = ['notified', 'updating', 'verifying'];

/** `14:32:05`: the clock time in UTC, as the rest of the CLI prints times. */
const clock = (iso: string): string => time(iso).slice(11);

/**
 * What a running rollout waits for right now, in one line: the devices of the current batch not yet
 * running the release and when the first of them times out, the bake end, or devices not yet told.
 * What `rollout status --watch` prints while nothing changes, so a hanging device is never silence.
 */
export function waitingText(view: RolloutView, devices: RolloutDeviceView[]): string {
  if (view.state !== 'running') return `${view.state}${view.reason ? `: ${view.reason}` : ''}`;
  const batch = view.batches.find((b) => b.number === view.currentBatch);
  if (!batch) return 'waiting for the rollout engine to start the first batch';
  const where = `batch ${batch.number}/${view.batches.length}`;
  if (batch.state === 'baking' && batch.bakeUntil)
    return `${where} is baking until ${clock(batch.bakeUntil)}: its devices must stay healthy until then`;
  const inBatch = devices.filter((d) => d.batch === batch.number);
  const told = inBatch.filter((d) => TOLD.includes(d.state));
  const pending = inBatch.filter((d) => d.state === 'pending');
  const parts: string[] = [];
  if (told.length > 0) {
    const deadlines = told
      .map((d) => d.deadline)
      .filter((d): d is string => d !== null)
      .sort();
    const names = told
      .slice(0, 3)
      .map((d) => d.name)
      .join(', ');
    parts.push(
      `waiting on ${plural(told.length, 'device')} (${names}${told.length > 3 ? ', …' : ''})` +
        (deadlines[0]
          ? `; ${told.length === 1 ? 'it times' : 'they time'} out at ${clock(deadlines[0])}`
          : ''),
    );
  }
  if (pending.length > 0) {
    const why =
      view.strategy.waitForDeltasSeconds > 0
        ? 'deltas being built or the rate limit'
        : view.strategy.maxDevicesPerMinute
          ? `the rate limit of ${view.strategy.maxDevicesPerMinute}/min`
          : 'the rollout engine';
    parts.push(`${plural(pending.length, 'device')} not told yet (waiting for ${why})`);
  }
  return `${where}: ${parts.length > 0 ? parts.join('; ') : 'every device of the batch has an outcome'}`;
}
