import type {
  CreatedProvisioningKey,
  DeltaRecord,
  Device,
  Fleet,
  FerryEvent,
  ProvisioningKey,
  Release,
  RolloutPlan,
  RolloutView,
} from '@ferry/protocol';
import { api, subscribe } from '../api';
import { h, mount } from '../dom';
import { ago, bytes, percent, saving, short } from '../format';
import { badge, progress, stateBar } from '../widgets';

const TABS = ['devices', 'releases', 'rollouts', 'provisioning'] as const;
type Tab = (typeof TABS)[number];

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
  const handlers: ((e: FerryEvent) => void)[] = [];
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
    case 'provisioning':
      await provisioningTab(body, fleet);
      break;
  }
}

async function devicesTab(
  body: HTMLElement,
  fleet: Fleet,
  versions: Map<string, number>,
  handlers: ((e: FerryEvent) => void)[],
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
        ['Device', 'Online', 'Release', 'State', 'Last seen', 'Tags'].map((c) => h('th', {}, c)),
      ),
    ),
    tbody,
  );
  const release = (id: string | null): string =>
    id ? (versions.has(id) ? `v${versions.get(id)}` : short(id)) : '–';
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
    summary.textContent = `${all.length} devices · ${all.filter((d) => d.online).length} online${q ? ` · ${shown.length} match` : ''}`;
    tbody.replaceChildren(
      ...shown.map((d) => {
        const report = d.report;
        const busy = ['downloading', 'downloaded', 'installing', 'starting'].includes(d.status);
        const state = h('td', { 'data-label': 'State' }, badge(d.status));
        if (busy && report?.bytesTotal)
          state.appendChild(
            progress(
              (report.bytesDone ?? 0) / report.bytesTotal,
              `${percent(report.bytesDone ?? 0, report.bytesTotal)} of ${bytes(report.bytesTotal)}`,
            ),
          );
        if (report?.error && ['failed', 'rolled_back', 'deferred'].includes(d.status))
          state.appendChild(h('div', { class: 'reason' }, report.error));
        return h(
          'tr',
          { 'data-uuid': d.uuid },
          h(
            'td',
            { 'data-label': 'Device' },
            h('b', {}, d.name),
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
          state,
          h('td', { 'data-label': 'Last seen' }, ago(d.lastSeenAt)),
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
  mount(body, h('div', { class: 'toolbar' }, search, summary), h('div', { class: 'scroll' }, table));
  render();
}

async function releasesTab(body: HTMLElement, fleet: Fleet, releases: Release[]): Promise<void> {
  const versions = new Map(releases.map((r) => [r.id, r.version]));
  const planOut = h('div');
  const formCard = h('section', { class: 'card', id: 'rollout-form' });
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
          h(
            'button',
            { onclick: () => rolloutForm(formCard, planOut, fleet, release, versions) },
            `Roll out v${release.version}`,
          ),
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
          'p',
          { class: 'muted' },
          'No release yet: push one with ferry release push or POST /v1/fleets/{fleet}/releases.',
        ),
  );
}

function field(labelText: string, input: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', {}, labelText), input);
}

function rolloutForm(
  card: HTMLElement,
  planOut: HTMLElement,
  fleet: Fleet,
  release: Release,
  versions: Map<string, number>,
): void {
  const batches = h('input', { name: 'batches', value: '1, 10%, 50%, 100%' });
  const bake = h('input', { name: 'bakeSeconds', type: 'number', min: 0, step: 'any', value: 60 });
  const maxFail = h('input', { name: 'maxFailurePercent', type: 'number', min: 0, max: 100, value: 20 });
  const onFailure = h(
    'select',
    { name: 'onFailure' },
    h('option', { value: 'pause' }, 'pause'),
    h('option', { value: 'abort' }, 'abort'),
  );
  const timeout = h('input', { name: 'deviceTimeoutSeconds', type: 'number', min: 1, value: 1800 });
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
    value: 120,
  });
  const error = h('p', { class: 'error', role: 'alert' });
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
      },
      ...(name ? { tagFilter: { name, ...(rest.length ? { value: rest.join('=') } : {}) } } : {}),
    };
  };
  const plan = (): void => {
    error.textContent = '';
    api<{ plan: RolloutPlan }>(`/v1/fleets/${fleet.slug}/rollouts`, { method: 'POST', json: body(true) })
      .then(({ plan }) => mount(planOut, planCard(plan, versions)))
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
    h('h2', {}, `Plan: v${plan.releaseVersion} to ${plan.devices.length} devices`),
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
                h(
                  'td',
                  {},
                  d.fromReleaseId
                    ? versions.has(d.fromReleaseId)
                      ? `v${versions.get(d.fromReleaseId)}`
                      : short(d.fromReleaseId)
                    : 'nothing',
                ),
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

async function rolloutsTab(
  body: HTMLElement,
  fleet: Fleet,
  versions: Map<string, number>,
  handlers: ((e: FerryEvent) => void)[],
): Promise<void> {
  const render = async (): Promise<void> => {
    const rollouts = await api<RolloutView[]>(`/v1/fleets/${fleet.slug}/rollouts`);
    mount(
      body,
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
                  h('span', { class: 'muted' }, `${r.trigger} · ${ago(r.createdAt)} · ${r.total} devices`),
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

async function provisioningTab(body: HTMLElement, fleet: Fleet): Promise<void> {
  const keys = await api<ProvisioningKey[]>(`/v1/fleets/${fleet.slug}/provisioning-keys`);
  const created = h('div');
  const server = location.origin;
  const create = (): void => {
    api<CreatedProvisioningKey>(`/v1/fleets/${fleet.slug}/provisioning-keys`, { method: 'POST', json: {} })
      .then((key) => {
        mount(
          created,
          h(
            'section',
            { class: 'card highlight' },
            h('h2', {}, 'New provisioning key'),
            h('p', {}, 'Shown once: copy it now.'),
            h('pre', { class: 'key' }, key.key),
            h('h3', {}, 'Register a device with the agent'),
            h('pre', {}, `FERRY_API_URL=${server} FERRY_PROVISIONING_KEY=${key.key} node ferry-agent.js`),
            h('h3', {}, 'Or 10 simulated devices'),
            h('pre', {}, `npm run simulate -- --url ${server} --key ${key.key} --count 10`),
            h('h3', {}, 'Or by hand'),
            h(
              'pre',
              {},
              `curl -s -X POST ${server}/v1/device/register -H 'content-type: application/json' -d '{"provisioningKey":"${key.key}"}'`,
            ),
          ),
        );
        void provisioningTab(body, fleet).then(() => body.prepend(created));
      })
      .catch((e: Error) => mount(created, h('p', { class: 'error' }, e.message)));
  };
  mount(
    body,
    created,
    h(
      'section',
      { class: 'card' },
      h(
        'div',
        { class: 'row' },
        h('h2', {}, 'Provisioning keys'),
        h('button', { onclick: create, id: 'create-key' }, 'Create key'),
      ),
      keys.length === 0
        ? h('p', { class: 'muted' }, 'No key yet.')
        : h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Key', 'Name', 'Created', 'Status'].map((c) => h('th', {}, c)),
              ),
            ),
            h(
              'tbody',
              {},
              keys.map((k) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'mono' }, `${k.prefix}…`),
                  h('td', {}, k.name ?? '–'),
                  h('td', {}, ago(k.createdAt)),
                  h('td', {}, k.revokedAt ? `revoked ${ago(k.revokedAt)}` : 'active'),
                ),
              ),
            ),
          ),
    ),
  );
}
