import type { HealthKindComparison, HealthVerdict, RolloutView } from '@ferry/protocol';
import { h } from '../dom';
import { plural } from '../format';
import { badge } from '../widgets';

const share = (k: number, n: number): string => (n === 0 ? '–' : `${Math.round((k * 100) / n)} %`);
const pValue = (p: number): string => (p < 0.0001 ? p.toExponential(1) : p.toPrecision(2));

function group(k: HealthKindComparison['updated'], devices: number): string {
  return `${k.affected} of ${devices} (${share(k.affected, devices)}, ${Math.round(k.low)}–${Math.round(k.high)} %) · ${k.events} events`;
}

/** One batch's control-group comparison: both groups side by side per kind, the test and the verdict. */
function verdictTable(batch: number, health: HealthVerdict): HTMLElement {
  return h(
    'div',
    { 'data-health-batch': batch },
    h(
      'div',
      { class: 'row' },
      h('b', {}, `Batch ${batch}`),
      badge(health.verdict === 'worse' ? 'failed' : health.verdict === 'ok' ? 'passed' : 'pending'),
      h('span', { class: health.verdict === 'worse' ? 'warn' : 'muted' }, health.verdict),
      health.interim ? h('span', { class: 'muted' }, 'interim: judged when the bake ends') : null,
    ),
    h(
      'p',
      { class: 'muted' },
      `${plural(health.updated.devices, 'updated device')} against ${health.control.devices} still on the old release, ` +
        `${new Date(health.from).toLocaleTimeString()}–${new Date(health.to).toLocaleTimeString()}; ` +
        `worse means more than ${health.marginPercent} points, Fisher's exact test under Holm's level (alpha ${health.alpha}), ` +
        `at least ${plural(health.minAffected, 'device')}.`,
    ),
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'health' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            [
              'Kind',
              'Updated (affected, 95 % interval)',
              'Old release (control)',
              'Difference',
              'p',
              'Under',
              'Worse',
            ].map((c) => h('th', {}, c)),
          ),
        ),
        h(
          'tbody',
          {},
          health.kinds.map((k) =>
            h(
              'tr',
              { class: k.worse ? 'worse' : '' },
              h('td', { 'data-label': 'Kind' }, k.kind),
              h('td', { 'data-label': 'Updated' }, group(k.updated, health.updated.devices)),
              h('td', { 'data-label': 'Control' }, group(k.control, health.control.devices)),
              h(
                'td',
                { 'data-label': 'Difference' },
                `${k.differencePercent >= 0 ? '+' : ''}${k.differencePercent.toFixed(0)} points`,
              ),
              h('td', { 'data-label': 'p' }, pValue(k.pValue)),
              h('td', { 'data-label': 'Under' }, k.threshold === null ? '–' : pValue(k.threshold)),
              h('td', { 'data-label': 'Worse' }, k.worse ? 'yes' : 'no'),
            ),
          ),
        ),
      ),
    ),
    h('p', {}, health.summary),
  );
}

/** The rollout's latest control-group verdict (docs/rollouts.md), or null when it compares nothing. */
export function healthCard(r: RolloutView): HTMLElement | null {
  const judged = [...r.batches].reverse().find((b) => b.health);
  if (!r.strategy.healthComparison && !judged) return null;
  return h(
    'section',
    { class: 'card' },
    h('h2', {}, 'Health against devices still on the old release'),
    judged?.health
      ? verdictTable(judged.number, judged.health)
      : h('p', { class: 'muted' }, 'Nothing judged yet: a batch is compared while it bakes.'),
  );
}
