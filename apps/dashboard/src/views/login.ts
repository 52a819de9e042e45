import { api, setToken } from '../api';
import { h, mount } from '../dom';

/** Asks for the admin token and checks it against the API before keeping it. */
export function loginView(root: HTMLElement): void {
  const input = h('input', {
    type: 'password',
    id: 'token',
    name: 'token',
    autocomplete: 'current-password',
    placeholder: 'API key or admin token',
    required: true,
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'card login' },
    h('h1', {}, 'Ferry'),
    h(
      'p',
      { class: 'muted' },
      'Sign in with an API key (ferry keys create), or the bootstrap admin token (FERRY_ADMIN_TOKEN, or data/admin-token on the server).',
    ),
    h('label', { for: 'token' }, 'API key or admin token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    // whoami: the server's audit log records it as the sign-in.
    api('/v1/auth/whoami', { token: value })
      .then(() => {
        setToken(value);
        location.hash = '#/fleets';
      })
      .catch((e: Error) => {
        error.textContent = `Not signed in: ${e.message}`;
      });
  });
  mount(root, form);
  input.focus();
}
