import type { Fleet, RolloutView } from '@ferry/protocol';
import { api, subscribe } from '../api';
import { h, mount } from '../dom';
import { ago, bytes, plural, saving } from '../format';
import { stateChart } from '../chart';
import { healthCard } from './rollout-health';
import { badge, barLegend, chips, legend, progress, stateBar } from '../widgets';

/** A rollout, live: batches, counts, chart, bytes, failures, and the operator's buttons. */
export async function rolloutView(
  root: HTMLElement,
  id: string,
  setCleanup: (fn: () => void) => void,
): Promise<void> {
  let rollout = await api<RolloutView>(`/v1/rollouts/${encodeURIComponent(id)}`);
  const fleets = await api<Fleet[]>('/v1/fleets');
  const fleet = fleets.find((f) => f.id === rollout.fleetId);
  const live = h('span', { class: 'live' }, 'connecting…');
  const content = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  mount(
    root,
    h(
      'nav',
      { class: 'crumbs' },
      h('a', { href: '#/fleets' }, 'Fleets'),
      ' / ',
      fleet ? h('a', { href: `#/fleets/${fleet.slug}/rollouts` }, fleet.name) : '?',
      ' / rollout',
    ),
    content,
    error,
  );
  const act = (action: 'pause' | 'resume' | 'abort'): void => {
    if (action === 'abort' && !confirm('Abort this rollout? Devices not yet told stay on their release.'))
      return;
    error.textContent = '';
    api<RolloutView>(`/v1/rollouts/${rollout.id}/${action}`, { method: 'POST' })
      .then((r) => {
        rollout = r;
        render();
      })
      .catch((e: Error) => (error.textContent = e.message));
  };
  const render = (): void => {
    const r = rollout;
    const done = (r.counts.succeeded ?? 0) + (r.counts.verifying ?? 0);
    const active = r.state === 'scheduled' || r.state === 'running' || r.state === 'paused';
    const s = r.strategy;
    mount(
      content,
      h('header', { class: 'title' }, h('h1', {}, `Rollout of v${r.releaseVersion}`), badge(r.state), live),
      r.reason
        ? h(
            'p',
            { class: r.state === 'paused' || r.state === 'aborted' ? 'reason warn' : 'reason' },
            r.reason,
          )
        : null,
      r.state === 'completed' && (r.counts.rolling_back ?? 0) > 0
        ? h(
            'p',
            { class: 'reason warn', id: 'still-rolling-back' },
            `${plural(r.counts.rolling_back ?? 0, 'device')} of this completed rollout ${(r.counts.rolling_back ?? 0) === 1 ? 'is' : 'are'} still rolling back to ${(r.counts.rolling_back ?? 0) === 1 ? 'its' : 'their'} previous release. Nothing to do while ${(r.counts.rolling_back ?? 0) === 1 ? 'it reports' : 'they report'}; one that stays here for minutes is stuck: look at it on the fleet's Devices tab (or ferry device UUID), and power-cycle it or remove it.`,
          )
        : null,
      h(
        'div',
        { class: 'row actions' },
        h('button', { id: 'pause', disabled: r.state !== 'running', onclick: () => act('pause') }, 'Pause'),
        h(
          'button',
          {
            id: 'resume',
            disabled: r.state !== 'paused' && r.state !== 'scheduled',
            onclick: () => act('resume'),
          },
          r.state === 'scheduled' ? 'Start now' : 'Resume',
        ),
        h(
          'button',
          { id: 'abort', class: 'danger', disabled: !active, onclick: () => act('abort') },
          'Abort',
        ),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Progress'),
        h(
          'p',
          { id: 'progress-text' },
          `${done} of ${plural(r.total, 'device')} on v${r.releaseVersion} · batch ${r.currentBatch} of ${r.batches.length}${r.waitingForWindow ? ` · ${r.waitingForWindow} waiting for their download or maintenance window` : ''}${r.deprovisioned ? ` · ${r.deprovisioned} deprovisioned meanwhile` : ''}`,
        ),
        stateBar(r.counts, r.total),
        chips(r.counts),
        h(
          'p',
          { class: 'muted' },
          `${s.ramp ? `Ramp ${s.ramp.base}×${s.ramp.factor}${s.ramp.max ? ` up to ${s.ramp.max}` : ''}` : `Batches ${s.batches.join(', ')}`}${s.startAt ? ` · starts ${s.startAt}` : ''} · bake ${s.bakeSeconds} s · at most ${s.maxFailurePercent} % failures, then ${s.onFailure} · timeout ${s.deviceTimeoutSeconds} s · roll back ${s.rollback}${s.waitForDeltasSeconds ? ` · waits up to ${s.waitForDeltasSeconds} s for deltas` : ''}${s.maxDevicesPerMinute ? ` · at most ${s.maxDevicesPerMinute} devices/min` : ''}${r.tagFilter ? ` · tag ${r.tagFilter.name}${r.tagFilter.value !== undefined ? `=${r.tagFilter.value}` : ''}` : ''} · ${r.trigger} · started ${ago(r.createdAt)}`,
        ),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Batches'),
        h(
          'ol',
          { class: 'batches' },
          r.batches.map((b) =>
            h(
              'li',
              { class: b.number === r.currentBatch ? 'current' : '', 'data-batch': b.number },
              h(
                'div',
                { class: 'row' },
                h('b', {}, `Batch ${b.number}`),
                h('span', { class: 'muted' }, plural(b.size, 'device')),
                badge(b.state),
                b.failurePercent > 0
                  ? h('span', { class: 'warn' }, `${Math.round(b.failurePercent)} % failed`)
                  : null,
                b.state === 'baking' && b.bakeUntil
                  ? h('span', { class: 'muted' }, `bakes until ${new Date(b.bakeUntil).toLocaleTimeString()}`)
                  : null,
              ),
              stateBar(b.counts, b.size),
            ),
          ),
        ),
        barLegend(r.counts),
      ),
      healthCard(r),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, 'Devices by state over time'),
        stateChart(r.history, r.total),
        legend(r.history),
      ),
      h(
        'section',
        { class: 'card bytes' },
        h('h2', {}, 'Bytes'),
        h('div', { class: 'muted' }, 'Sent so far, of the projected download'),
        progress(
          r.bytes.projected > 0 ? r.bytes.sent / r.bytes.projected : 0,
          `sent ${bytes(r.bytes.sent)} of ${bytes(r.bytes.projected)}`,
          'sent',
        ),
        h('div', { class: 'muted' }, 'Projected download, against what full layers would cost'),
        progress(
          r.bytes.full > 0 ? r.bytes.projected / r.bytes.full : 0,
          `${bytes(r.bytes.projected)} instead of ${bytes(r.bytes.full)}`,
        ),
        h(
          'p',
          { class: 'muted' },
          r.bytes.full > 0
            ? `Deltas save ${saving(r.bytes.projected, r.bytes.full)} of what full layers would cost. Sent = what devices reported downloading.`
            : 'Nothing to download.',
        ),
      ),
      h(
        'section',
        { class: 'card' },
        h('h2', {}, `Failures (${r.failures.length})`),
        r.failures.length === 0
          ? h('p', { class: 'muted' }, 'None.')
          : h(
              'div',
              { class: 'scroll' },
              h(
                'table',
                { class: 'failures' },
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Device', 'Batch', 'State', 'Reason', 'When'].map((c) => h('th', {}, c)),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  r.failures.map((f) =>
                    h(
                      'tr',
                      {},
                      h('td', { 'data-label': 'Device' }, f.name),
                      h('td', { 'data-label': 'Batch' }, String(f.batch)),
                      h('td', { 'data-label': 'State' }, badge(f.state)),
                      h('td', { 'data-label': 'Reason' }, f.reason ?? '–'),
                      h('td', { 'data-label': 'When' }, ago(f.at)),
                    ),
                  ),
                ),
              ),
            ),
      ),
    );
  };
  let timer: ReturnType<typeof setTimeout> | null = null;
  const refresh = (): void => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      api<RolloutView>(`/v1/rollouts/${rollout.id}`)
        .then((r) => {
          rollout = r;
          render();
        })
        .catch(() => undefined);
    }, 250);
  };
  const stop = subscribe(
    rollout.fleetId,
    (event) => {
      if (event.type !== 'rollout.updated' || event.data.id !== rollout.id) return;
      // How many pushed updates arrived (the 5 s clock below refreshes too): also shown in the tooltip.
      live.dataset.updates = String(Number(live.dataset.updates ?? 0) + 1);
      live.title = `${live.dataset.updates} live updates`;
      refresh();
    },
    (ok) => {
      live.textContent = ok ? '● live' : '○ reconnecting';
      live.className = ok ? 'live on' : 'live';
    },
  );
  // The chart's time axis and bake countdowns move on even when nothing is reported.
  const clock = setInterval(
    () =>
      (rollout.state === 'scheduled' || rollout.state === 'running' || rollout.state === 'paused') &&
      refresh(),
    5000,
  );
  setCleanup(() => {
    stop();
    clearInterval(clock);
  });
  render();
}
