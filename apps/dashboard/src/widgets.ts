import type { DeviceCounts } from '@ferry/protocol';
import { h } from './dom';
import { DEVICE_STATES, STATE_COLOURS, label } from './states';

/** A bar split by device state, widths set through the CSSOM (the page's CSP forbids inline styles). */
export function stateBar(counts: DeviceCounts, total: number): HTMLElement {
  const bar = h('div', {
    class: 'statebar',
    role: 'img',
    'aria-label': DEVICE_STATES.filter((s) => counts[s])
      .map((s) => `${counts[s]} ${label(s)}`)
      .join(', '),
  });
  for (const state of DEVICE_STATES) {
    const n = counts[state] ?? 0;
    if (n === 0 || total === 0) continue;
    // The number inside its colour (hidden by CSS when the segment is too narrow; the title keeps it).
    const part = h('span', { title: `${n} ${label(state)}`, 'data-state': state }, String(n));
    part.style.width = `${(n * 100) / total}%`;
    part.style.background = STATE_COLOURS[state];
    bar.appendChild(part);
  }
  return bar;
}

/** A simple progress bar (0..1). */
export function progress(fraction: number, text: string, kind = ''): HTMLElement {
  const fill = h('span', { class: kind });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return h(
    'div',
    {
      class: 'progress',
      role: 'progressbar',
      'aria-valuenow': Math.round(fraction * 100),
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      title: text,
    },
    fill,
    h('em', {}, text),
  );
}

export function chips(counts: DeviceCounts): HTMLElement {
  return h(
    'ul',
    { class: 'chips' },
    DEVICE_STATES.filter((s) => (counts[s] ?? 0) > 0).map((state) => {
      const dot = h('i');
      dot.style.background = STATE_COLOURS[state];
      return h('li', { 'data-state': state }, dot, `${label(state)} `, h('b', {}, String(counts[state])));
    }),
  );
}

export function badge(state: string): HTMLElement {
  return h('span', { class: `badge badge-${state}` }, label(state));
}

/** The colour key of state bars: every state in `counts`, with its total. */
export function barLegend(counts: DeviceCounts): HTMLElement {
  const list = chips(counts);
  list.classList.add('legend');
  list.setAttribute('aria-label', 'legend');
  return list;
}

/** The colour key of a chart: every state that appears in its samples. */
export function legend(history: { counts: DeviceCounts }[]): HTMLElement {
  const seen = DEVICE_STATES.filter((state) => history.some((h) => (h.counts[state] ?? 0) > 0));
  return h(
    'ul',
    { class: 'chips legend' },
    seen.map((state) => {
      const dot = h('i');
      dot.style.background = STATE_COLOURS[state];
      return h('li', {}, dot, label(state));
    }),
  );
}
