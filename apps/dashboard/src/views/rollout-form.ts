import type { Fleet, Release, RolloutPlan, RolloutView } from '@ferry/protocol';
import { ROLLOUT_STRATEGY_DEFAULTS as DEFAULTS } from '@ferry/protocol/wire';
import { api } from '../api';
import { h, mount } from '../dom';
import { bytes, plural, releaseLabel, saving } from '../format';

function field(labelText: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, labelText), input);
}

/** The form that plans (dry run) or starts a rollout of `release`. */
export function rolloutForm(
  card: HTMLElement,
  planOut: HTMLElement,
  fleet: Fleet,
  release: Release,
  versions: Map<string, number>,
): void {
  const batches = h('input', { name: 'batches', value: DEFAULTS.batches.join(', ') });
  const bake = h('input', {
    name: 'bakeSeconds',
    type: 'number',
    min: 0,
    step: 'any',
    value: DEFAULTS.bakeSeconds,
  });
  const maxFail = h('input', {
    name: 'maxFailurePercent',
    type: 'number',
    min: 0,
    max: 100,
    value: DEFAULTS.maxFailurePercent,
  });
  const onFailure = h(
    'select',
    { name: 'onFailure' },
    h('option', { value: 'pause' }, 'pause'),
    h('option', { value: 'abort' }, 'abort'),
  );
  const timeout = h('input', {
    name: 'deviceTimeoutSeconds',
    type: 'number',
    min: 1,
    value: DEFAULTS.deviceTimeoutSeconds,
  });
  const rollback = h(
    'select',
    { name: 'rollback' },
    ...['failed', 'batch', 'none'].map((v) => h('option', { value: v }, v)),
  );
  const tag = h('input', { name: 'tag', placeholder: 'name or name=value (optional)' });
  const rate = h('input', { name: 'maxDevicesPerMinute', type: 'number', min: 1, placeholder: 'no limit' });
  const waitDeltas = h('input', {
    name: 'waitForDeltasSeconds',
    type: 'number',
    min: 0,
    max: 3600,
    value: DEFAULTS.waitForDeltasSeconds,
  });
  const error = h('p', { class: 'error', role: 'alert' });
  // The seed of the plan last shown: starting with it starts exactly that plan.
  let shownSeed: number | undefined;
  const body = (dryRun: boolean): unknown => {
    const [name, ...rest] = tag.value.trim().split('=');
    return {
      releaseId: release.id,
      dryRun,
      strategy: {
        batches: batches.value
          .split(',')
          .map((b) => b.trim())
          .filter(Boolean)
          .map((b) => (b.endsWith('%') ? b : Number(b))),
        bakeSeconds: Number(bake.value),
        maxFailurePercent: Number(maxFail.value),
        onFailure: onFailure.value,
        deviceTimeoutSeconds: Number(timeout.value),
        rollback: rollback.value,
        waitForDeltasSeconds: Number(waitDeltas.value),
        ...(rate.value ? { maxDevicesPerMinute: Number(rate.value) } : {}),
        ...(!dryRun && shownSeed !== undefined ? { seed: shownSeed } : {}),
      },
      ...(name ? { tagFilter: { name, ...(rest.length ? { value: rest.join('=') } : {}) } } : {}),
    };
  };
  const plan = (): void => {
    error.textContent = '';
    api<{ plan: RolloutPlan }>(`/v1/fleets/${fleet.slug}/rollouts`, { method: 'POST', json: body(true) })
      .then(({ plan }) => {
        shownSeed = plan.strategy.seed;
        mount(planOut, planCard(plan, versions));
      })
      .catch((e: Error) => (error.textContent = e.message));
  };
  const start = (): void => {
    error.textContent = '';
    api<RolloutView>(`/v1/fleets/${fleet.slug}/rollouts`, { method: 'POST', json: body(false) })
      .then((rollout) => (location.hash = `#/rollouts/${rollout.id}`))
      .catch((e: Error) => (error.textContent = e.message));
  };
  mount(
    card,
    h('h2', {}, `Roll out v${release.version}`),
    h(
      'div',
      { class: 'form-grid' },
      field('Batches (cumulative)', batches),
      field('Bake time (s)', bake),
      field('Max failures per batch (%)', maxFail),
      field('On failure', onFailure),
      field('Device timeout (s)', timeout),
      field('Roll back', rollback),
      field('Wait for deltas being built (s)', waitDeltas),
      field('Devices told per minute', rate),
      field('Only devices tagged', tag),
    ),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: plan }, 'Plan (dry run)'),
      h('button', { type: 'button', id: 'start-rollout', onclick: start }, 'Start rollout'),
    ),
    error,
  );
  card.scrollIntoView({ behavior: 'smooth' });
}

function planCard(plan: RolloutPlan, versions: Map<string, number>): HTMLElement {
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, `Plan: v${plan.releaseVersion} to ${plural(plan.devices.length, 'device')}`),
    h(
      'p',
      {},
      `Batches: ${plan.batches.map((b) => b.size).join(' → ')}. Projected download ${bytes(plan.bytes.projected)} (full layers: ${bytes(plan.bytes.full)}; deltas save ${saving(plan.bytes.projected, plan.bytes.full)}).`,
    ),
    h(
      'p',
      { class: 'muted' },
      `Left alone: ${plan.excluded.pinned.length} pinned, ${plan.excluded.upToDate.length} already on v${plan.releaseVersion}, ${plan.excluded.filteredOut} outside the tag filter.`,
    ),
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Device', 'Batch', 'From', 'Download', 'Full layers'].map((c) => h('th', {}, c)),
          ),
        ),
        h(
          'tbody',
          {},
          plan.devices
            .slice(0, 200)
            .map((d) =>
              h(
                'tr',
                {},
                h('td', {}, d.name),
                h('td', {}, String(d.batch)),
                h('td', {}, releaseLabel(d.fromReleaseId, versions, 'nothing')),
                h(
                  'td',
                  {},
                  `${bytes(d.projectedBytes)} (${d.layers.map((l) => l.kind).join(', ') || 'nothing'})`,
                ),
                h('td', {}, bytes(d.fullBytes)),
              ),
            ),
        ),
      ),
    ),
  );
}
