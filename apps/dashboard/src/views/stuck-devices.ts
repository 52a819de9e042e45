import type { Device } from '@ferry/protocol';
import { ago } from '../format';

/** A device busy with an update that has not reported for this long is stuck. */
export const STUCK_AFTER_MS = 3 * 60_000;

const BUSY = ['downloading', 'downloaded', 'installing', 'starting'];

/**
 * Why a device looks stuck, or null: busy with an update (say downloading at 0 %) yet silent for
 * minutes, or online and told to update yet silent since. An idle device that says nothing is fine.
 */
export function stuckReason(
  device: Device,
  now: number,
  release: (id: string | null) => string,
): string | null {
  const reportAt = device.report ? Date.parse(device.report.at) : null;
  const silentFor = reportAt === null ? null : now - reportAt;
  if (BUSY.includes(device.status) && silentFor !== null && silentFor > STUCK_AFTER_MS) {
    const report = device.report!;
    const where =
      device.status === 'downloading' && report.bytesTotal
        ? `downloading at ${Math.floor((100 * (report.bytesDone ?? 0)) / report.bytesTotal)} %`
        : device.status;
    return `${where}, no report since ${ago(report.at, now)}${device.online ? ' while online' : ''}`;
  }
  const told = device.targetReleaseId !== null && device.targetReleaseId !== device.releaseId;
  if (
    device.online &&
    told &&
    !BUSY.includes(device.status) &&
    !['failed', 'deferred'].includes(device.status)
  ) {
    const since = Math.max(reportAt ?? 0, device.lastSeenAt ? Date.parse(device.lastSeenAt) : 0);
    if (now - since > STUCK_AFTER_MS)
      return `online and told to run ${release(device.targetReleaseId)}, silent for ${ago(new Date(since).toISOString(), now).replace(/ ago$/, '')}`;
  }
  return null;
}
