import type { Device, Fleet } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago, bytes, percent, plural, releaseLabel, short } from '../format';
import { badge, progress } from '../widgets';
import type { FleetEventHandlers } from './fleet-events';
import { stuckReason } from './stuck-devices';

/** The fleet's devices, kept live from the event stream: state, progress, presence, targets. */
export async function devicesTab(
  body: HTMLElement,
  fleet: Fleet,
  versions: Map<string, number>,
  handlers: FleetEventHandlers,
): Promise<void> {
  const devices = new Map((await api<Device[]>(`/v1/fleets/${fleet.slug}/devices`)).map((d) => [d.uuid, d]));
  const search = h('input', {
    type: 'search',
    placeholder: 'search name, uuid, tag, release…',
    'aria-label': 'search devices',
  });
  const summary = h('p', { class: 'muted' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'devices' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Device', 'Online', 'Release', 'State', 'Services', 'Last report', 'Tags'].map((c) =>
          h('th', {}, c),
        ),
      ),
    ),
    tbody,
  );
  const release = (id: string | null): string => releaseLabel(id, versions, '–');
  const render = (): void => {
    const q = search.value.trim().toLowerCase();
    const all = [...devices.values()];
    const shown = all.filter(
      (d) =>
        !q ||
        [
          d.name,
          d.uuid,
          d.status,
          release(d.releaseId),
          ...Object.entries(d.tags).map(([k, v]) => `${k}=${v}`),
        ].some((x) => x.toLowerCase().includes(q)),
    );
    const now = Date.now();
    const stuck = all.filter((d) => stuckReason(d, now, release) !== null).length;
    summary.textContent = `${plural(all.length, 'device')} · ${all.filter((d) => d.online).length} online${stuck ? ` · ${stuck} stuck` : ''}${q ? ` · ${shown.length} match` : ''}`;
    tbody.replaceChildren(
      ...shown.map((d) => {
        const report = d.report;
        const busy = ['downloading', 'downloaded', 'installing', 'starting'].includes(d.status);
        // One block in the cell, so on a phone (cells are label | value rows) it keeps its width.
        const state = h('div', { class: 'state-cell' }, badge(d.status));
        if (busy && report?.bytesTotal)
          state.appendChild(
            progress(
              (report.bytesDone ?? 0) / report.bytesTotal,
              `${percent(report.bytesDone ?? 0, report.bytesTotal)} of ${bytes(report.bytesTotal)}`,
            ),
          );
        if (report?.error && ['failed', 'rolled_back', 'deferred'].includes(d.status))
          state.appendChild(h('div', { class: 'reason' }, report.error));
        const stuckWhy = stuckReason(d, now, release);
        if (stuckWhy)
          state.appendChild(h('div', { class: 'stuck-note' }, h('b', {}, 'stuck'), ` ${stuckWhy}`));
        // Per service of the app (docs/compose.md): state, exit code, health, restarts.
        const services = h(
          'td',
          { 'data-label': 'Services' },
          ...(d.services ?? []).map((svc) =>
            h(
              'div',
              { class: 'service', 'data-service': svc.name },
              h('span', { class: svc.state === 'running' && svc.health !== 'unhealthy' ? 'dot on' : 'dot' }),
              `${svc.name}: ${svc.state === 'exited' ? `exited (${svc.exitCode ?? '?'})` : svc.state}` +
                (svc.health ? `, ${svc.health}` : '') +
                (svc.restartCount > 0 ? `, ${svc.restartCount} restarts` : ''),
            ),
          ),
        );
        return h(
          'tr',
          { 'data-uuid': d.uuid, class: stuckWhy ? 'stuck' : '' },
          h(
            'td',
            { 'data-label': 'Device' },
            h('a', { href: `#/devices/${d.uuid}` }, h('b', {}, d.name)),
            h('div', { class: 'muted mono' }, short(d.uuid)),
          ),
          h(
            'td',
            { 'data-label': 'Online' },
            h('span', { class: d.online ? 'dot on' : 'dot' }),
            d.online ? 'online' : 'offline',
          ),
          h(
            'td',
            { 'data-label': 'Release' },
            release(d.releaseId),
            d.targetReleaseId && d.targetReleaseId !== d.releaseId
              ? h('span', { class: 'muted' }, ` → ${release(d.targetReleaseId)}`)
              : null,
          ),
          h('td', { 'data-label': 'State' }, state),
          services,
          // "online" is the MQTT connection now; the report time is when the device last said something,
          // so the two columns never contradict each other.
          h(
            'td',
            { 'data-label': 'Last report' },
            report ? ago(report.at, now) : 'none yet',
            d.online ? null : h('div', { class: 'muted' }, `offline, last seen ${ago(d.lastSeenAt, now)}`),
          ),
          h(
            'td',
            { 'data-label': 'Tags' },
            Object.entries(d.tags).map(([k, v]) => h('span', { class: 'tag' }, v ? `${k}=${v}` : k)),
          ),
        );
      }),
    );
  };
  let scheduled = false;
  const later = (): void => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      render();
    }, 150);
  };
  handlers.push((event) => {
    const uuid = event.data.uuid as string | undefined;
    const device = uuid ? devices.get(uuid) : undefined;
    if (!device) {
      if (event.type === 'device.presence' || event.type === 'device.state')
        void api<Device>(`/v1/devices/${uuid}`)
          .then((d) => devices.set(d.uuid, d))
          .then(later, () => undefined);
      return;
    }
    const data = event.data;
    if (event.type === 'device.state') {
      device.status = data.status as string;
      device.lastSeenAt = event.at;
      device.report = {
        releaseId: (data.releaseId as string | null) ?? null,
        bytesDone: (data.bytesDone as number | null) ?? null,
        bytesTotal: (data.bytesTotal as number | null) ?? null,
        error: (data.error as string | null) ?? null,
        at: event.at,
      };
      if (data.status === 'running' && data.releaseId) device.releaseId = data.releaseId as string;
      if (Array.isArray(data.services)) device.services = data.services as Device['services'];
    } else if (event.type === 'device.presence') {
      device.online = data.online === true;
      device.lastSeenAt = event.at;
    } else if (event.type === 'device.target') {
      device.targetReleaseId = (data.releaseId as string) ?? device.targetReleaseId;
    } else if (event.type === 'device.deprovisioned') {
      devices.delete(device.uuid);
    }
    later();
  });
  search.addEventListener('input', render);
  // "stuck" and "N min ago" move on with the clock, not only with events.
  const clock = setInterval(() => (body.isConnected ? render() : clearInterval(clock)), 30_000);
  mount(body, h('div', { class: 'toolbar' }, search, summary), h('div', { class: 'scroll' }, table));
  render();
}
