import type { AuditEntry, Fleet } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';

function targetsText(entry: AuditEntry): string {
  return Object.entries(entry.targets)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** The audit log, newest first on screen, filtered by fleet and age. */
export async function auditView(root: HTMLElement, fleet: string | null, hours: number): Promise<void> {
  const since = new Date(Date.now() - hours * 3600_000).toISOString();
  const query = new URLSearchParams({ since, limit: '1000' });
  if (fleet) query.set('fleet', fleet);
  const [entries, fleets] = await Promise.all([
    api<AuditEntry[]>(`/v1/audit?${query.toString()}`),
    api<Fleet[]>('/v1/fleets'),
  ]);
  const slugOf = (id: string | null): string => (id ? (fleets.find((f) => f.id === id)?.slug ?? id) : '–');
  const fleetSelect = h(
    'select',
    { id: 'audit-fleet' },
    h('option', { value: '' }, 'every fleet'),
    ...fleets.map((f) => h('option', { value: f.slug, selected: f.slug === fleet }, f.slug)),
  );
  const age = h(
    'select',
    { id: 'audit-age' },
    ...[1, 24, 168, 720].map((n) =>
      h(
        'option',
        { value: n, selected: n === hours },
        n === 1 ? 'last hour' : n < 168 ? 'last day' : n === 168 ? 'last week' : 'last 30 days',
      ),
    ),
  );
  const refilter = (): void => {
    location.hash = `#/audit/${encodeURIComponent(fleetSelect.value || '-')}/${age.value}`;
  };
  fleetSelect.addEventListener('change', refilter);
  age.addEventListener('change', refilter);
  mount(
    root,
    h('h1', {}, 'Audit log'),
    h('div', { class: 'row' }, fleetSelect, age),
    entries.length === 0
      ? h('p', { class: 'muted' }, 'No entries.')
      : h(
          'table',
          { id: 'audit' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['When', 'Who', 'Action', 'Fleet', 'Targets', 'From', 'Outcome'].map((c) => h('th', {}, c)),
            ),
          ),
          h(
            'tbody',
            {},
            [...entries]
              .reverse()
              .map((e) =>
                h(
                  'tr',
                  { class: e.outcome === 'ok' ? '' : 'failed' },
                  h('td', {}, new Date(e.at).toLocaleString()),
                  h('td', {}, e.actor),
                  h('td', { class: 'mono' }, e.action),
                  h('td', {}, slugOf(e.fleetId)),
                  h('td', { class: 'mono' }, targetsText(e)),
                  h('td', {}, e.source),
                  h(
                    'td',
                    { title: e.error ?? '' },
                    `${e.outcome} ${e.status}${e.error ? `: ${e.error}` : ''}`,
                  ),
                ),
              ),
          ),
        ),
  );
}
