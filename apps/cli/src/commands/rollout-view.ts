import type {
  DeviceCounts,
  HealthVerdict,
  RolloutBatchView,
  RolloutDeviceState,
  RolloutPlan,
  RolloutStrategy,
  RolloutView,
} from '@ferry/protocol';

import { bytes, duration, fields, percent, table, time } from '../support/format';

/** Device states in the order an operator reads them: done, in flight, waiting, then the bad ones. */
const STATE_ORDER: RolloutDeviceState[] = [
  'succeeded',
  'verifying',
  'updating',
  'notified',
  'pending',
  'failed',
  'timed_out',
  'rolling_back',
  'rolled_back',
  'canceled',
];

/** A plan lists its devices one by one up to this many; larger ones only per batch. */
const PLAN_DEVICES_SHOWN = 20;

/** Devices still on their way (no outcome yet). */
const IN_FLIGHT: RolloutDeviceState[] = ['pending', 'notified', 'updating'];

/** `succeeded 5, updating 2, pending 40` (states with no device left out). */
export function countsText(counts: DeviceCounts): string {
  const parts = STATE_ORDER.filter((s) => (counts[s] ?? 0) > 0).map((s) => `${s} ${counts[s]}`);
  return parts.length > 0 ? parts.join(', ') : 'no devices';
}

export function strategyText(s: RolloutStrategy): string {
  return (
    (s.ramp
      ? `ramp ${s.ramp.base}×${s.ramp.factor}${s.ramp.max ? ` up to ${s.ramp.max}` : ''}`
      : `batches ${s.batches.join(',')}`) +
    (s.startAt ? `; starts ${s.startAt}` : '') +
    `; bake ${duration(s.bakeSeconds)}; ` +
    `max failures ${s.maxFailurePercent}% then ${s.onFailure}; rollback ${s.rollback}; ` +
    `device timeout ${duration(s.deviceTimeoutSeconds)}` +
    (s.waitForDeltasSeconds ? `; waits up to ${duration(s.waitForDeltasSeconds)} for deltas` : '') +
    (s.maxDevicesPerMinute ? `; at most ${s.maxDevicesPerMinute} devices/min` : '') +
    (s.seed !== undefined ? `; batch seed ${s.seed}` : '') +
    (s.healthComparison
      ? `; health against devices on the old release (margin ${s.healthComparison.marginPercent} points, alpha ${s.healthComparison.alpha}) then ${s.healthComparison.onWorse}`
      : '')
  );
}

const share = (k: number, n: number): string => (n === 0 ? '-' : `${Math.round((k * 100) / n)}%`);
const pValue = (p: number): string => (p < 0.0001 ? p.toExponential(1) : p.toPrecision(2));

/**
 * A batch's control-group comparison: both groups side by side per kind (devices affected, share,
 * events), the difference, the test's p-value and the level it had to be under, and the verdict.
 */
export function healthText(batch: number, health: HealthVerdict): string {
  const head =
    `health of batch ${batch} against the control group (${health.interim ? 'interim, judged when the bake ends' : 'final'}, ` +
    `${time(health.from)} to ${time(health.to)}): ${health.verdict}\n` +
    `  updated: ${health.updated.devices} devices on the release; control: ${health.control.devices} devices still on the old one; ` +
    `margin ${health.marginPercent} points, alpha ${health.alpha}, at least ${health.minAffected} affected\n`;
  const rows = table(
    ['KIND', 'UPDATED', 'EVENTS', 'CONTROL', 'EVENTS', 'DIFF', 'P', 'UNDER', 'WORSE'],
    health.kinds.map((k) => [
      k.kind,
      `${k.updated.affected}/${health.updated.devices} (${share(k.updated.affected, health.updated.devices)})`,
      k.updated.events,
      `${k.control.affected}/${health.control.devices} (${share(k.control.affected, health.control.devices)})`,
      k.control.events,
      `${k.differencePercent >= 0 ? '+' : ''}${k.differencePercent.toFixed(0)} pts`,
      pValue(k.pValue),
      k.threshold === null ? '-' : pValue(k.threshold),
      k.worse ? 'yes' : 'no',
    ]),
  );
  return `${head}${rows}  ${health.summary}\n`;
}

/** What a rollout would do, from a dry run: devices per batch and projected bytes. */
export function planText(plan: RolloutPlan, fleet: string): string {
  const saved = plan.bytes.full > 0 ? 1 - plan.bytes.projected / plan.bytes.full : null;
  const excluded = [
    plan.excluded.upToDate.length ? `${plan.excluded.upToDate.length} already run it` : '',
    plan.excluded.pinned.length ? `${plan.excluded.pinned.length} pinned` : '',
    plan.excluded.filteredOut ? `${plan.excluded.filteredOut} without the tag` : '',
  ].filter(Boolean);
  const online = plan.devices.filter((d) => d.online).length;
  const head = fields([
    ['rollout plan', `release v${plan.releaseVersion} to fleet ${fleet}`],
    [
      'devices',
      `${plan.devices.length} (${online} online)${excluded.length ? `; left out: ${excluded.join(', ')}` : ''}`,
    ],
    ['batches', plan.batches.map((b) => b.size).join(' + ') || 'none'],
    [
      'download',
      `${bytes(plan.bytes.projected)} projected, ${bytes(plan.bytes.full)} as full layers` +
        (saved !== null ? ` (${percent(saved)} saved by deltas ready now)` : ''),
    ],
    ['strategy', strategyText(plan.strategy)],
    ...(plan.tagFilter
      ? [
          [
            'tag filter',
            plan.tagFilter.value !== undefined
              ? `${plan.tagFilter.name}=${plan.tagFilter.value}`
              : plan.tagFilter.name,
          ] as [string, string],
        ]
      : []),
  ]);
  if (plan.devices.length === 0) return head;
  // Under update policies (windows, rate caps): when each batch would be done were it told now.
  const limited = plan.batches.some((b) => b.doneBy);
  const batches = table(
    ['BATCH', 'DEVICES', 'ONLINE', 'PROJECTED', 'FULL', ...(limited ? ['DONE BY (IF TOLD NOW)'] : [])],
    plan.batches.map((b) => {
      const members = plan.devices.filter((d) => d.batch === b.number);
      return [
        b.number,
        b.size,
        members.filter((d) => d.online).length,
        bytes(members.reduce((sum, d) => sum + d.projectedBytes, 0)),
        bytes(members.reduce((sum, d) => sum + d.fullBytes, 0)),
        ...(limited ? [b.doneBy ? time(b.doneBy) : 'no limit'] : []),
      ];
    }),
  );
  if (plan.devices.length > PLAN_DEVICES_SHOWN) {
    return `${head}\n${batches}(${plan.devices.length} devices: --dry-run --json lists each)\n`;
  }
  const devices = table(
    ['BATCH', 'DEVICE', 'NAME', 'ONLINE', 'PROJECTED', 'FULL'],
    plan.devices.map((d) => [
      d.batch,
      d.uuid,
      d.name,
      d.online ? 'yes' : 'no',
      bytes(d.projectedBytes),
      bytes(d.fullBytes),
    ]),
  );
  return `${head}\n${batches}\n${devices}`;
}

function batchDone(batch: RolloutBatchView): number {
  const waiting = IN_FLIGHT.reduce((sum, s) => sum + (batch.counts[s] ?? 0), 0);
  return batch.size - waiting;
}

/** `[██████░░░░░░]`: devices of the batch with an outcome. */
export function bar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : width;
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

function headline(view: RolloutView, fleet: string): string {
  const where =
    view.state === 'running' || view.state === 'paused'
      ? ` (batch ${Math.max(1, view.currentBatch)} of ${view.batches.length})`
      : '';
  return `rollout ${view.id}: release v${view.releaseVersion} to fleet ${fleet}: ${view.state}${where}${view.reason ? ` — ${view.reason}` : ''}`;
}

/** The whole status: headline, strategy, counts, bytes, one bar per batch and the failures. */
export function rolloutText(view: RolloutView, fleet: string): string {
  const lines = [
    headline(view, fleet),
    fields([
      ['strategy', strategyText(view.strategy)],
      [
        'devices',
        `${view.total}: ${countsText(view.counts)}${view.waitingForWindow ? `; ${view.waitingForWindow} waiting for their download or maintenance window` : ''}${view.deprovisioned ? ` (${view.deprovisioned} deprovisioned meanwhile, not counted)` : ''}`,
      ],
      [
        'bytes',
        `${bytes(view.bytes.sent)} sent of ${bytes(view.bytes.projected)} projected (${bytes(view.bytes.full)} as full layers)`,
      ],
      ['started', `${time(view.createdAt)}${view.finishedAt ? `, finished ${time(view.finishedAt)}` : ''}`],
    ]).trimEnd(),
    '',
    table(
      ['BATCH', 'STATE', 'PROGRESS', '', 'FAILED', 'DEVICES'],
      view.batches.map((b) => [
        b.number,
        b.state,
        bar(batchDone(b), b.size),
        `${batchDone(b)}/${b.size}`,
        `${b.failurePercent.toFixed(0)}%`,
        countsText(b.counts),
      ]),
    ).trimEnd(),
  ];
  const judged = [...view.batches].reverse().find((b) => b.health);
  if (judged?.health) lines.push('', healthText(judged.number, judged.health).trimEnd());
  if (view.failures.length > 0) {
    lines.push('', `failures (${view.failures.length}):`);
    for (const f of view.failures.slice(0, 20)) {
      lines.push(`  ${f.uuid} ${f.name} batch ${f.batch}: ${f.state}${f.reason ? ` — ${f.reason}` : ''}`);
    }
    if (view.failures.length > 20) lines.push(`  … and ${view.failures.length - 20} more (--json for all)`);
  }
  return lines.join('\n') + '\n';
}

/** One line for logs and pipes while watching: printed only when it changes. */
export function rolloutLine(view: RolloutView): string {
  const batch = view.batches.find((b) => b.number === view.currentBatch);
  const where = batch ? ` batch ${batch.number}/${view.batches.length} ${batch.state}` : '';
  return `${view.state}${where}: ${countsText(view.counts)}; ${bytes(view.bytes.sent)} sent${view.reason ? ` (${view.reason})` : ''}`;
}

export function rolloutsTable(views: RolloutView[]): string {
  return table(
    ['ID', 'RELEASE', 'STATE', 'BATCH', 'DEVICES', 'FAILED', 'CREATED', 'REASON'],
    views.map((v) => {
      const failed = v.failures.length;
      return [
        v.id,
        `v${v.releaseVersion}`,
        v.state,
        `${v.currentBatch}/${v.batches.length}`,
        `${v.counts.succeeded ?? 0}/${v.total} ok`,
        failed,
        time(v.createdAt),
        v.reason ?? '',
      ];
    }),
  );
}
