import type { Fleet, UpdatePolicyEntry } from '@ferry/protocol';
import { downloadRateText } from '@ferry/protocol/wire';
import { api } from '../api';
import { h } from '../dom';

const rate = (bytesPerSecond: number | null): string =>
  bytesPerSecond === null ? '–' : downloadRateText(bytesPerSecond);

const windows = (list: string[] | null): string =>
  list === null ? '–' : list.length ? list.join('; ') : 'any time';

function level(entry: UpdatePolicyEntry): string {
  if (entry.scope.kind === 'tag') return `tag ${entry.scope.tag}=${entry.scope.value}`;
  if (entry.scope.kind === 'device') return `device ${entry.scope.uuid.slice(0, 8)}`;
  return 'fleet';
}

/**
 * The fleet's update policy (docs/rollouts.md "Maintenance windows and metered links"): when its
 * devices may install and download, and how fast; set with `ferry policy set`.
 */
export async function updatePolicyCard(fleet: Fleet): Promise<HTMLElement> {
  const { entries } = await api<{ entries: UpdatePolicyEntry[] }>(`/v1/fleets/${fleet.slug}/update-policy`);
  return h(
    'section',
    { class: 'card update-policy' },
    h('h2', {}, 'Update policy'),
    entries.length === 0
      ? h(
          'p',
          { class: 'muted' },
          'Devices download and install at any time, at full speed. Maintenance windows, download windows and rate caps: ',
          h(
            'code',
            {},
            `ferry policy set ${fleet.slug} --maintenance-window "Mon-Fri 02:00-04:00 Europe/Berlin"`,
          ),
        )
      : h(
          'table',
          { class: 'policies' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Level', 'Installs in', 'Downloads in', 'Rate cap'].map((t) => h('th', {}, t)),
            ),
          ),
          h(
            'tbody',
            {},
            entries.map((e) =>
              h(
                'tr',
                { 'data-level': level(e) },
                h('td', { 'data-label': 'Level' }, level(e)),
                h('td', { 'data-label': 'Installs in' }, windows(e.maintenanceWindows)),
                h('td', { 'data-label': 'Downloads in' }, windows(e.downloadWindows)),
                h('td', { 'data-label': 'Rate cap' }, rate(e.downloadRate)),
              ),
            ),
          ),
        ),
  );
}
