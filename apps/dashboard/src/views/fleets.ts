import type { Fleet } from '@ferry/protocol';
import { api } from '../api';
import { h, mount } from '../dom';
import { ago } from '../format';

export async function fleetsView(root: HTMLElement): Promise<void> {
  const fleets = await api<Fleet[]>('/v1/fleets');
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
      ? h('p', { class: 'muted' }, 'No fleet yet.')
      : h(
          'ul',
          { class: 'cards' },
          fleets.map((f) =>
            h(
              'li',
              { class: 'card' },
              h('a', { href: `#/fleets/${f.slug}`, class: 'big' }, f.name),
              h('div', { class: 'muted' }, `${f.slug} · ${f.arch} · created ${ago(f.createdAt)}`),
            ),
          ),
        ),
    h('section', { class: 'card' }, h('h2', {}, 'New fleet'), form),
  );
}
