import type { Device, Fleet, Release } from '@ferry/protocol';
import { api, subscribe } from '../api';
import { h, mount } from '../dom';
import { ago, releaseLabel } from '../format';
import { badge } from '../widgets';
import { variablesPanel } from './variables-panel';

/** One device: what it runs and reports, and its configuration variables (its own and inherited). */
export async function deviceView(
  root: HTMLElement,
  uuid: string,
  setCleanup: (fn: () => void) => void,
): Promise<void> {
  const device = await api<Device>(`/v1/devices/${encodeURIComponent(uuid)}`);
  const fleets = await api<Fleet[]>('/v1/fleets');
  const fleet = fleets.find((f) => f.id === device.fleetId);
  const releases = fleet ? await api<Release[]>(`/v1/fleets/${fleet.slug}/releases`) : [];
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  const services = [...new Set(releases.flatMap((r) => r.services.map((s) => s.name)))].sort();
  const facts = h('dl', { class: 'facts' });
  const renderFacts = (d: Device): void => {
    const pairs: [string, Node | string][] = [
      ['State', badge(d.status)],
      ['Online', d.online ? 'online' : `offline · last seen ${ago(d.lastSeenAt)}`],
      ['Release', releaseLabel(d.releaseId, versions, 'none')],
      ['Target', releaseLabel(d.targetReleaseId, versions, 'none')],
      ['UUID', d.uuid],
      [
        'Tags',
        Object.entries(d.tags)
          .map(([k, v]) => (v ? `${k}=${v}` : k))
          .join(', ') || '–',
      ],
    ];
    mount(
      facts,
      pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
    );
  };
  renderFacts(device);
  const panel = h('div');
  mount(
    root,
    h(
      'nav',
      { class: 'crumbs' },
      h('a', { href: '#/fleets' }, 'Fleets'),
      ' / ',
      fleet ? h('a', { href: `#/fleets/${fleet.slug}/devices` }, fleet.name) : '?',
      ' / ',
      device.name,
    ),
    h(
      'header',
      { class: 'title' },
      h('h1', {}, device.name),
      h('span', { class: 'muted mono' }, device.uuid),
    ),
    h('section', { class: 'card' }, facts),
    panel,
  );
  const reload = variablesPanel(panel, {
    kind: 'device',
    path: `/v1/devices/${encodeURIComponent(device.uuid)}/variables`,
    services,
  });
  let reported = device.variables.reportedVersion;
  setCleanup(
    subscribe(device.fleetId, (event) => {
      const about = event.data.uuid;
      // A fleet-level change (uuid null) or one of this device; its reports carry the version it runs.
      if (event.type === 'variables.changed' && (about === null || about === device.uuid)) reload();
      if (about !== device.uuid) return;
      if (event.type === 'device.state' || event.type === 'device.presence')
        void api<Device>(`/v1/devices/${encodeURIComponent(device.uuid)}`).then((d) => {
          renderFacts(d);
          if (d.variables.reportedVersion !== reported) {
            reported = d.variables.reportedVersion;
            reload();
          }
        });
    }),
  );
}
