import type { CreatedProvisioningKey, Fleet, ProvisioningKey } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago } from '../format';

/** The fleet's provisioning keys; a new key is shown once with the commands that use it. */
export async function provisioningTab(body: HTMLElement, fleet: Fleet): Promise<void> {
  const keys = await api<ProvisioningKey[]>(`/v1/fleets/${fleet.slug}/provisioning-keys`);
  const created = h('div');
  const server = location.origin;
  const error = h('p', { class: 'error', role: 'alert' });
  const revoke = (key: ProvisioningKey): void => {
    if (
      !confirm(
        `Revoke key ${key.prefix}…? Devices can no longer register with it; registered devices keep working.`,
      )
    )
      return;
    api<unknown>(`/v1/fleets/${fleet.slug}/provisioning-keys/${encodeURIComponent(key.id)}`, {
      method: 'DELETE',
    })
      .then(() => provisioningTab(body, fleet))
      .catch((e: Error) => (error.textContent = e.message));
  };
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
      error,
      keys.length === 0
        ? h('p', { class: 'muted' }, 'No key yet.')
        : h(
            'table',
            { class: 'keys' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Key', 'Name', 'Created', 'Status', ''].map((c) => h('th', {}, c)),
              ),
            ),
            h(
              'tbody',
              {},
              keys.map((k) =>
                h(
                  'tr',
                  { 'data-key': k.id },
                  h('td', { class: 'mono', 'data-label': 'Key' }, `${k.prefix}…`),
                  h('td', { 'data-label': 'Name' }, k.name ?? '–'),
                  h('td', { 'data-label': 'Created' }, ago(k.createdAt)),
                  h('td', { 'data-label': 'Status' }, k.revokedAt ? `revoked ${ago(k.revokedAt)}` : 'active'),
                  h(
                    'td',
                    {},
                    k.revokedAt
                      ? null
                      : h('button', { class: 'danger revoke', onclick: () => revoke(k) }, 'Revoke'),
                  ),
                ),
              ),
            ),
          ),
    ),
  );
}
