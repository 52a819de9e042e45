import type { ApiKey, BootstrapTokenState, CreatedApiKey, Fleet } from '@ferry/protocol';
import { OPERATOR_ROLES } from '@ferry/protocol/wire';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago } from '../format';

function keyState(key: ApiKey): string {
  if (key.revokedAt) return `revoked ${ago(key.revokedAt)}`;
  if (key.expiresAt && Date.parse(key.expiresAt) <= Date.now()) return 'expired';
  return key.expiresAt ? `until ${new Date(key.expiresAt).toLocaleDateString()}` : 'active';
}

/** Operator API keys (admin only): create (shown once), list, revoke; the bootstrap token switch. */
export async function keysView(root: HTMLElement): Promise<void> {
  const [keys, fleets, bootstrap] = await Promise.all([
    api<ApiKey[]>('/v1/api-keys'),
    api<Fleet[]>('/v1/fleets'),
    api<BootstrapTokenState>('/v1/auth/bootstrap-token'),
  ]);
  const slugOf = (id: string): string => fleets.find((f) => f.id === id)?.slug ?? id;
  const created = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  const name = h('input', {
    name: 'name',
    id: 'key-name',
    placeholder: 'key name, e.g. ci-deployer',
    required: true,
  });
  const role = h(
    'select',
    { name: 'role', id: 'key-role' },
    ...OPERATOR_ROLES.map((r) => h('option', { value: r }, r)),
  );
  const scope = h(
    'select',
    { name: 'fleets', id: 'key-fleets', multiple: true, title: 'none selected: every fleet' },
    ...fleets.map((f) => h('option', { value: f.id }, f.slug)),
  );
  const days = h('input', {
    name: 'days',
    id: 'key-days',
    type: 'number',
    min: 1,
    placeholder: 'expires in days (optional)',
  });
  const form = h(
    'form',
    { class: 'inline', id: 'create-api-key' },
    name,
    role,
    scope,
    days,
    h('button', { type: 'submit' }, 'Create key'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = [...scope.selectedOptions].map((o) => o.value);
    const body = {
      name: name.value.trim(),
      role: role.value,
      ...(chosen.length > 0 ? { fleets: chosen } : {}),
      ...(days.value
        ? { expiresAt: new Date(Date.now() + Number(days.value) * 86400_000).toISOString() }
        : {}),
    };
    api<CreatedApiKey>('/v1/api-keys', { method: 'POST', json: body })
      .then((key) =>
        keysView(root).then(() =>
          root.prepend(
            h(
              'section',
              { class: 'card highlight' },
              h('h2', {}, `New API key ${key.name}`),
              h('p', {}, 'Shown once: copy it now. The server keeps only its hash.'),
              h('pre', { class: 'key', id: 'new-api-key' }, key.key),
            ),
          ),
        ),
      )
      .catch((e: Error) => (error.textContent = e.message));
  });
  const revoke = (key: ApiKey) => (): void => {
    if (!confirm(`Revoke API key ${key.name}? Whatever uses it stops working at once.`)) return;
    api(`/v1/api-keys/${encodeURIComponent(key.id)}`, { method: 'DELETE' })
      .then(() => keysView(root))
      .catch((e: Error) => (error.textContent = e.message));
  };
  const disableBootstrap = (): void => {
    if (!confirm('Turn the bootstrap admin token off for good? Only API keys will work.')) return;
    api('/v1/auth/bootstrap-token', { method: 'DELETE' })
      .then(() => keysView(root))
      .catch((e: Error) => (error.textContent = e.message));
  };
  mount(
    root,
    created,
    h('h1', {}, 'API keys'),
    h(
      'section',
      { class: 'card' },
      keys.length === 0
        ? h('p', { class: 'muted' }, 'No API key yet: everything uses the bootstrap admin token.')
        : h(
            'table',
            { id: 'api-keys' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Name', 'Role', 'Fleets', 'Key', 'State', 'Last used', ''].map((c) => h('th', {}, c)),
              ),
            ),
            h(
              'tbody',
              {},
              keys.map((k) =>
                h(
                  'tr',
                  {},
                  h('td', {}, k.name),
                  h('td', {}, k.role),
                  h('td', {}, k.fleetIds === null ? 'all' : k.fleetIds.map(slugOf).join(', ')),
                  h('td', { class: 'mono' }, `${k.prefix}…`),
                  h('td', {}, keyState(k)),
                  h('td', {}, ago(k.lastUsedAt)),
                  h(
                    'td',
                    {},
                    k.revokedAt ? '' : h('button', { class: 'link', onclick: revoke(k) }, 'Revoke'),
                  ),
                ),
              ),
            ),
          ),
    ),
    h('section', { class: 'card' }, h('h2', {}, 'New API key'), form),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Bootstrap admin token'),
      bootstrap.enabled
        ? [
            h('p', {}, 'Enabled. Once an admin API key exists you can turn it off for good.'),
            h('button', { onclick: disableBootstrap, id: 'disable-bootstrap' }, 'Disable bootstrap token'),
          ]
        : h('p', {}, 'Disabled: only API keys work.'),
    ),
  );
}
