import type { DeviceCounts } from '@ferry/protocol';
import { s } from './dom';
import { DEVICE_STATES, STATE_COLOURS, label } from './states';

/**
 * A stacked area chart of devices by state over time, in plain SVG that scales to its container.
 * Each sample holds until the next one (counts change in steps).
 */
export function stateChart(
  history: { at: string; counts: DeviceCounts }[],
  total: number,
  now = Date.now(),
): SVGElement {
  const width = 640;
  const height = 200;
  const pad = { left: 34, right: 8, top: 16, bottom: 22 };
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart',
    role: 'img',
    'aria-label': 'devices by state over time',
  });
  if (history.length === 0 || total === 0) return svg;
  const start = Date.parse(history[0]!.at);
  const end = Math.max(now, Date.parse(history[history.length - 1]!.at), start + 1000);
  const x = (t: number): number => pad.left + ((t - start) / (end - start)) * (width - pad.left - pad.right);
  const y = (n: number): number => height - pad.bottom - (n / total) * (height - pad.top - pad.bottom);
  // Step samples: each holds until the next.
  const points: { t: number; counts: DeviceCounts }[] = [];
  history.forEach((sample, i) => {
    const t = Date.parse(sample.at);
    if (i > 0) points.push({ t, counts: history[i - 1]!.counts });
    points.push({ t, counts: sample.counts });
  });
  points.push({ t: end, counts: history[history.length - 1]!.counts });
  const below = points.map(() => 0);
  for (const state of DEVICE_STATES) {
    if (!points.some((p) => (p.counts[state] ?? 0) > 0)) continue;
    const top = points.map((p, i) => below[i]! + (p.counts[state] ?? 0));
    const upper = points.map((p, i) => `${x(p.t).toFixed(1)},${y(top[i]!).toFixed(1)}`);
    const lower = points.map((p, i) => `${x(p.t).toFixed(1)},${y(below[i]!).toFixed(1)}`).reverse();
    svg.appendChild(
      s(
        'polygon',
        { points: [...upper, ...lower].join(' '), fill: STATE_COLOURS[state], opacity: 0.85 },
        s('title', {}, label(state)),
      ),
    );
    top.forEach((v, i) => (below[i] = v));
  }
  for (const n of [0, Math.round(total / 2), total]) {
    svg.appendChild(s('line', { x1: pad.left, x2: width - pad.right, y1: y(n), y2: y(n), class: 'grid' }));
    svg.appendChild(
      s('text', { x: pad.left - 4, y: y(n) + 4, 'text-anchor': 'end', class: 'axis' }, String(n)),
    );
  }
  const seconds = Math.round((end - start) / 1000);
  svg.appendChild(
    s('text', { x: pad.left, y: height - 6, class: 'axis' }, new Date(start).toLocaleTimeString()),
  );
  svg.appendChild(
    s(
      'text',
      { x: width - pad.right, y: height - 6, 'text-anchor': 'end', class: 'axis' },
      `+${seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`}`,
    ),
  );
  return svg;
}
