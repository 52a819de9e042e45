import type { DeltaRecord, Fleet, Release } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago, bytes, saving } from '../format';
import { rolloutForm } from './rollout-form';

/** The fleet's releases with their layers and best deltas, each with a button to roll it out. */
export async function releasesTab(body: HTMLElement, fleet: Fleet, releases: Release[]): Promise<void> {
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  const planOut = h('div');
  // Hidden until a "Roll out" button fills it: an empty card is noise.
  const formCard = h('section', { class: 'card', id: 'rollout-form', hidden: true });
  const openForm = (release: Release): void => {
    formCard.hidden = false;
    rolloutForm(formCard, planOut, fleet, release, versions);
  };
  const list = await Promise.all(
    releases.map(async (release) => {
      const deltas = await api<DeltaRecord[]>(`/v1/releases/${release.id}/deltas`).catch(
        () => [] as DeltaRecord[],
      );
      const gzip = release.services.flatMap((s) => s.layers).reduce((sum, l) => sum + l.gzipSize, 0);
      return h(
        'section',
        { class: 'card release' },
        h(
          'header',
          { class: 'row' },
          h('h2', {}, `v${release.version}`),
          h(
            'span',
            { class: 'muted' },
            `${ago(release.createdAt)} · ${bytes(release.totalSize)} unpacked · ${bytes(gzip)} gzip'd`,
          ),
          h('button', { onclick: () => openForm(release) }, `Roll out v${release.version}`),
        ),
        release.note ? h('p', {}, release.note) : null,
        release.services.map((service) =>
          h(
            'div',
            { class: 'service' },
            h(
              'h3',
              {},
              service.name,
              service.image ? h('span', { class: 'muted' }, ` ${service.image}`) : null,
            ),
            h(
              'table',
              { class: 'layers' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Layer', 'Size', "Gzip'd", 'Best delta', 'Saving'].map((c) => h('th', {}, c)),
                ),
              ),
              h(
                'tbody',
                {},
                service.layers.map((layer) => {
                  const ready = deltas
                    .filter((d) => d.target === layer.diffId && d.state === 'ready' && d.size !== null)
                    .sort((a, b) => (a.size ?? 0) - (b.size ?? 0))[0];
                  const pending = deltas.some(
                    (d) => d.target === layer.diffId && (d.state === 'queued' || d.state === 'building'),
                  );
                  return h(
                    'tr',
                    {},
                    h('td', { class: 'mono', 'data-label': 'Layer' }, layer.diffId.slice(7, 19)),
                    h('td', { 'data-label': 'Size' }, bytes(layer.size)),
                    h('td', { 'data-label': "Gzip'd" }, bytes(layer.gzipSize)),
                    h(
                      'td',
                      { 'data-label': 'Best delta' },
                      ready ? bytes(ready.size) : pending ? 'building…' : '–',
                    ),
                    h(
                      'td',
                      { 'data-label': 'Saving' },
                      ready && ready.size !== null ? saving(ready.size, layer.gzipSize) : '–',
                    ),
                  );
                }),
              ),
            ),
          ),
        ),
      );
    }),
  );
  mount(
    body,
    formCard,
    planOut,
    list.length
      ? list
      : h(
          'div',
          { class: 'empty' },
          h('p', {}, 'No release yet. Push one from a docker save or OCI archive:'),
          h('pre', {}, `docker save app:1 | npx ferry push ${fleet.slug} -`),
          h(
            'p',
            { class: 'muted' },
            `or: curl -X POST ${location.origin}/v1/fleets/${fleet.slug}/releases -H 'Authorization: Bearer …' -H 'content-type: application/x-tar' -T app.tar`,
          ),
        ),
  );
}
