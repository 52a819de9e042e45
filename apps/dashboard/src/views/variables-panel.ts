import type { Variable, VariableList } from '@ferry/protocol';
import { VARIABLE_LEVELS } from '@ferry/protocol/wire';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago } from '../format';

/** Whose variables a panel shows and edits: a fleet's (fleet levels) or a device's (device levels). */
export interface VariablesOwner {
  kind: 'fleet' | 'device';
  /** `/v1/fleets/{slug}/variables` or `/v1/devices/{uuid}/variables`. */
  path: string;
  /** The services of the fleet's releases, offered for a per-service variable. */
  services: string[];
}

const LEVEL_TEXT: Record<Variable['level'], string> = {
  fleet: 'fleet',
  'fleet+service': 'fleet · service',
  device: 'device',
  'device+service': 'device · service',
};

/**
 * Is `v` shadowed by a more specific setting of the same name wherever it applies? (A service-less
 * setting is, when a more specific service-less one exists; a per-service one, when a more specific
 * one for every service or the same service exists.)
 */
function overridden(v: Variable, all: Variable[]): boolean {
  const rank = VARIABLE_LEVELS.indexOf(v.level);
  return all.some(
    (o) =>
      o.name === v.name &&
      VARIABLE_LEVELS.indexOf(o.level) > rank &&
      (o.service === null || o.service === v.service),
  );
}

/** Whether the device runs the current variables version. */
function versionText(list: VariableList): string {
  if (list.uuid === null) return `revision ${list.version}`;
  const reported = list.reportedVersion;
  if (reported === null) return `version ${list.version} · the device has not reported one yet`;
  return reported === list.version
    ? `version ${list.version} · the device runs it`
    : `version ${list.version} · the device still runs ${reported}`;
}

/**
 * Configuration variables of a fleet or device: every setting with its level, the ones a more specific
 * level overrides struck through, secrets never shown (the API does not send them); a form sets one
 * (per service or for all, optionally secret) and each own setting can be deleted. Returns a function
 * that reloads the panel (for live events).
 */
export function variablesPanel(body: HTMLElement, owner: VariablesOwner): () => void {
  const list = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  const name = h('input', {
    id: 'var-name',
    name: 'name',
    placeholder: 'NAME',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    pattern: '[A-Za-z_][A-Za-z0-9_]*',
    title: 'letters, digits and _, not starting with a digit',
    maxlength: 128,
  });
  const value = h('input', { id: 'var-value', name: 'value', placeholder: 'value', autocomplete: 'off' });
  const service = h(
    'select',
    { id: 'var-service', name: 'service' },
    h('option', { value: '' }, 'all services'),
    owner.services.map((s) => h('option', { value: s }, s)),
  );
  const secret = h('input', { type: 'checkbox', id: 'var-secret', name: 'secret' });
  const own = owner.kind === 'fleet' ? ['fleet', 'fleet+service'] : ['device', 'device+service'];

  const load = (): void => {
    api<VariableList>(owner.path)
      .then((answer) => render(answer))
      .catch((e: Error) => (error.textContent = e.message));
  };

  const remove = (v: Variable): void => {
    const query = v.service ? `?service=${encodeURIComponent(v.service)}` : '';
    api(`${owner.path}/${encodeURIComponent(v.name)}${query}`, { method: 'DELETE' })
      .then(() => {
        error.textContent = '';
        load();
      })
      .catch((e: Error) => (error.textContent = e.message));
  };

  const render = (answer: VariableList): void => {
    const rows = [...answer.variables].sort(
      (a, b) =>
        a.name.localeCompare(b.name) ||
        VARIABLE_LEVELS.indexOf(a.level) - VARIABLE_LEVELS.indexOf(b.level) ||
        (a.service ?? '').localeCompare(b.service ?? ''),
    );
    mount(
      list,
      h('p', { class: 'muted', id: 'variables-version' }, versionText(answer)),
      rows.length === 0
        ? h('p', { class: 'muted' }, 'No variables yet.')
        : h(
            'table',
            { class: 'variables' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Name', 'Value', 'Level', 'Service', 'Changed', ''].map((c) => h('th', {}, c)),
              ),
            ),
            h(
              'tbody',
              {},
              rows.map((v) => {
                const shadowed = overridden(v, rows);
                return h(
                  'tr',
                  {
                    'data-name': v.name,
                    'data-level': v.level,
                    class: shadowed ? 'overridden' : '',
                    title: shadowed ? 'overridden by a more specific level' : '',
                  },
                  h('td', { class: 'mono', 'data-label': 'Name' }, v.name),
                  h(
                    'td',
                    { class: 'mono value', 'data-label': 'Value' },
                    v.secret || v.value === null ? h('span', { class: 'secret' }, '•••••• secret') : v.value,
                  ),
                  h('td', { 'data-label': 'Level' }, LEVEL_TEXT[v.level]),
                  h('td', { 'data-label': 'Service' }, v.service ?? 'all'),
                  h('td', { 'data-label': 'Changed' }, ago(v.updatedAt)),
                  h(
                    'td',
                    {},
                    own.includes(v.level)
                      ? h(
                          'button',
                          {
                            class: 'secondary small',
                            'aria-label': `delete ${v.name}${v.service ? ` of ${v.service}` : ''}`,
                            onclick: () => remove(v),
                          },
                          'Delete',
                        )
                      : h('span', { class: 'muted' }, 'inherited'),
                  ),
                );
              }),
            ),
          ),
    );
  };

  const form = h(
    'form',
    { class: 'variable-form', id: 'variable-form' },
    h('div', { class: 'field' }, h('label', { for: 'var-name' }, 'Name'), name),
    h('div', { class: 'field grow' }, h('label', { for: 'var-value' }, 'Value'), value),
    h('div', { class: 'field' }, h('label', { for: 'var-service' }, 'Service'), service),
    h('label', { class: 'check', for: 'var-secret' }, secret, ' secret'),
    h('button', { type: 'submit' }, 'Set'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    api<Variable>(owner.path, {
      method: 'POST',
      json: {
        name: name.value.trim(),
        value: value.value,
        ...(service.value ? { service: service.value } : {}),
        ...(secret.checked ? { secret: true } : {}),
      },
    })
      .then(() => {
        error.textContent = '';
        name.value = '';
        value.value = '';
        secret.checked = false;
        load();
      })
      .catch((e: Error) => (error.textContent = e.message));
  });

  mount(
    body,
    h(
      'section',
      { class: 'card', id: 'variables' },
      h('h2', {}, 'Configuration variables'),
      h(
        'p',
        { class: 'muted' },
        owner.kind === 'fleet'
          ? 'Every device of the fleet gets these as environment variables; a device or per-service setting overrides them.'
          : "This device's own settings override the fleet's (most specific wins: device · service, device, fleet · service, fleet).",
      ),
      list,
      form,
      error,
    ),
  );
  load();
  return load;
}
