import type { Fleet, RolloutView } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago, plural } from '../format';
import { badge, stateBar } from '../widgets';
import type { FleetEventHandlers } from './fleet-events';
import { updatePolicyCard } from './update-policy-card';

/** The fleet's update policy, and its rollouts with their state and counts, refreshed when one changes. */
export async function rolloutsTab(
  body: HTMLElement,
  fleet: Fleet,
  versions: Map<string, number>,
  handlers: FleetEventHandlers,
): Promise<void> {
  const render = async (): Promise<void> => {
    const [rollouts, policy] = await Promise.all([
      api<RolloutView[]>(`/v1/fleets/${fleet.slug}/rollouts`),
      updatePolicyCard(fleet),
    ]);
    mount(
      body,
      policy,
      rollouts.length === 0
        ? h('p', { class: 'muted' }, 'No rollout yet. Start one from a release.')
        : h(
            'ul',
            { class: 'cards' },
            rollouts.map((r) =>
              h(
                'li',
                { class: 'card' },
                h(
                  'div',
                  { class: 'row' },
                  h(
                    'a',
                    { href: `#/rollouts/${r.id}`, class: 'big' },
                    `v${versions.get(r.releaseId) ?? r.releaseVersion}`,
                  ),
                  badge(r.state),
                  h(
                    'span',
                    { class: 'muted' },
                    `${r.trigger} · ${ago(r.createdAt)} · ${plural(r.total, 'device')}`,
                  ),
                ),
                stateBar(r.counts, r.total),
              ),
            ),
          ),
    );
  };
  let timer: ReturnType<typeof setTimeout> | null = null;
  handlers.push((event) => {
    if (event.type !== 'rollout.updated' || timer) return;
    timer = setTimeout(() => {
      timer = null;
      void render();
    }, 300);
  });
  await render();
}
