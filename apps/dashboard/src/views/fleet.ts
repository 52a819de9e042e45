import type { Fleet, Release } from '@ferry/protocol';
import { api, subscribe } from '../api';
import { h, mount } from '../dom';
import { devicesTab } from './fleet-devices';
import type { FleetEventHandlers } from './fleet-events';
import { provisioningTab } from './fleet-provisioning';
import { releasesTab } from './fleet-releases';
import { rolloutsTab } from './fleet-rollouts';
import { variablesPanel } from './variables-panel';

export const TABS = ['devices', 'releases', 'rollouts', 'variables', 'provisioning'] as const;
export type Tab = (typeof TABS)[number];

/** A fleet's page: devices (live), releases with a rollout form, rollouts, provisioning. */
export async function fleetView(
  root: HTMLElement,
  slug: string,
  tab: Tab,
  setCleanup: (fn: () => void) => void,
): Promise<void> {
  const fleet = await api<Fleet>(`/v1/fleets/${encodeURIComponent(slug)}`);
  const releases = await api<Release[]>(`/v1/fleets/${fleet.slug}/releases`);
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  const body = h('div');
  const live = h('span', { class: 'live', title: 'live updates' }, 'connecting…');
  mount(
    root,
    h('nav', { class: 'crumbs' }, h('a', { href: '#/fleets' }, 'Fleets'), ' / ', fleet.name),
    h(
      'header',
      { class: 'title' },
      h('h1', {}, fleet.name),
      h('span', { class: 'muted' }, `${fleet.slug} · ${fleet.arch}`),
      live,
    ),
    h(
      'nav',
      { class: 'tabs' },
      TABS.map((t) => h('a', { href: `#/fleets/${fleet.slug}/${t}`, class: t === tab ? 'active' : '' }, t)),
    ),
    body,
  );
  const handlers: FleetEventHandlers = [];
  setCleanup(
    subscribe(
      fleet.id,
      (event) => handlers.forEach((fn) => fn(event)),
      (ok) => {
        live.textContent = ok ? '● live' : '○ reconnecting';
        live.className = ok ? 'live on' : 'live';
      },
    ),
  );
  switch (tab) {
    case 'devices':
      await devicesTab(body, fleet, versions, handlers);
      break;
    case 'releases':
      await releasesTab(body, fleet, releases);
      break;
    case 'rollouts':
      await rolloutsTab(body, fleet, versions, handlers);
      break;
    case 'variables': {
      const reload = variablesPanel(body, {
        kind: 'fleet',
        path: `/v1/fleets/${fleet.slug}/variables`,
        services: [...new Set(releases.flatMap((r) => r.services.map((s) => s.name)))].sort(),
      });
      handlers.push((event) => {
        if (event.type === 'variables.changed' && event.data.uuid === null) reload();
      });
      break;
    }
    case 'provisioning':
      await provisioningTab(body, fleet);
      break;
  }
}
