import type { Device, Fleet, Release, RolloutView } from '@ferry/protocol';
import { releaseSigningMode } from '@ferry/protocol/wire';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago, plural } from '../format';
import { progress } from '../widgets';

/** What the fleets page shows of one fleet: its devices, what they run, and its active rollout. */
interface FleetSummary {
  fleet: Fleet;
  devices: Device[];
  releases: Release[];
  rollout: RolloutView | null;
}

async function summary(fleet: Fleet): Promise<FleetSummary> {
  const base = `/v1/fleets/${encodeURIComponent(fleet.slug)}`;
  const [devices, releases, running, paused] = await Promise.all([
    api<Device[]>(`${base}/devices`),
    api<Release[]>(`${base}/releases`),
    api<RolloutView[]>(`${base}/rollouts?state=running&limit=1`),
    api<RolloutView[]>(`${base}/rollouts?state=paused&limit=1`),
  ]);
  return { fleet, devices, releases, rollout: running[0] ?? paused[0] ?? null };
}

/** Devices per release as a horizontal bar chart, newest release first; "none" for devices without one. */
function releaseChart({ devices, releases }: FleetSummary): HTMLElement {
  const counts = new Map<string, number>();
  for (const d of devices) counts.set(d.releaseId ?? '', (counts.get(d.releaseId ?? '') ?? 0) + 1);
  const rows = [...releases]
    .sort((a, b) => b.version - a.version)
    .filter((r) => counts.has(r.id))
    .map((r): [string, number] => [`v${r.version}`, counts.get(r.id)!]);
  if (counts.has('')) rows.push(['none', counts.get('')!]);
  return h(
    'ul',
    { class: 'release-chart', 'aria-label': 'devices per release' },
    rows.map(([label, n]) => {
      const bar = h('span', { class: 'bar' });
      bar.style.width = `${(n * 100) / devices.length}%`;
      return h(
        'li',
        {},
        h('span', { class: 'label' }, label),
        h('span', { class: 'track' }, bar),
        h('b', {}, String(n)),
      );
    }),
  );
}

function fleetCard(s: FleetSummary): HTMLElement {
  const { fleet, devices, rollout } = s;
  const online = devices.filter((d) => d.online).length;
  const done = rollout ? (rollout.counts.succeeded ?? 0) + (rollout.counts.verifying ?? 0) : 0;
  return h(
    'li',
    { class: 'card fleet', 'data-fleet': fleet.slug },
    h('a', { href: `#/fleets/${fleet.slug}`, class: 'big' }, fleet.name),
    h('div', { class: 'muted' }, `${fleet.slug} · ${fleet.arch} · created ${ago(fleet.createdAt)}`),
    h(
      'div',
      {
        class: 'muted fleet-signing',
        title: fleet.releaseTrust
          ? "devices run only releases signed by the threshold of the owners' release keys"
          : "releases are signed by the server's fleet key",
      },
      `releases signed by ${releaseSigningMode(fleet.releaseTrust)}`,
    ),
    h(
      'p',
      { class: 'fleet-counts' },
      h('b', {}, plural(devices.length, 'device')),
      ' · ',
      h('span', { class: online > 0 ? 'dot on' : 'dot' }),
      `${online} online now`,
    ),
    devices.length > 0
      ? releaseChart(s)
      : h('p', { class: 'muted' }, `No device yet: create a provisioning key on the fleet's page.`),
    rollout
      ? h(
          'a',
          { href: `#/rollouts/${rollout.id}`, class: 'fleet-rollout' },
          h(
            'span',
            {},
            `Rollout of v${rollout.releaseVersion} `,
            h('span', { class: `badge badge-${rollout.state}` }, rollout.state),
          ),
          progress(
            rollout.total > 0 ? done / rollout.total : 0,
            `${done} of ${rollout.total} · batch ${rollout.currentBatch} of ${rollout.batches.length}`,
          ),
        )
      : h('p', { class: 'muted' }, 'No active rollout.'),
  );
}

export async function fleetsView(root: HTMLElement): Promise<void> {
  const fleets = await api<Fleet[]>('/v1/fleets');
  const summaries = await Promise.all(fleets.map(summary));
  const name = h('input', { name: 'name', placeholder: 'fleet name', required: true });
  const arch = h(
    'select',
    { name: 'arch' },
    ...['aarch64', 'armv7hf', 'amd64'].map((a) => h('option', { value: a }, a)),
  );
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'inline' },
    name,
    arch,
    h('button', { type: 'submit' }, 'Create fleet'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    api<Fleet>('/v1/fleets', { method: 'POST', json: { name: name.value, arch: arch.value } })
      .then((fleet) => (location.hash = `#/fleets/${fleet.slug}`))
      .catch((e: Error) => (error.textContent = e.message));
  });
  mount(
    root,
    h('h1', {}, 'Fleets'),
    fleets.length === 0
      ? h(
          'p',
          { class: 'muted' },
          'No fleet yet: create one below, or with ferry fleet create NAME --arch amd64.',
        )
      : h('ul', { class: 'cards' }, summaries.map(fleetCard)),
    h('section', { class: 'card' }, h('h2', {}, 'New fleet'), form),
  );
}
