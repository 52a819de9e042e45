import { setToken, token } from './api';
import { h, mount } from './dom';
import { deviceView } from './views/device';
import { TABS, fleetView } from './views/fleet';
import { auditView } from './views/audit';
import { keysView } from './views/keys';
import { fleetsView } from './views/fleets';
import { loginView } from './views/login';
import { rolloutView } from './views/rollout';

const app = document.getElementById('app') as HTMLElement;
const header = document.getElementById('top') as HTMLElement;
let cleanup: (() => void) | null = null;

let generation = 0;

/**
 * Hash routes: #/login, #/fleets, #/fleets/{slug}/{tab}, #/devices/{uuid}, #/rollouts/{id}, #/keys, #/audit/{fleet|-}/{hours}.
 * Each route renders into a fresh element of its own: a view still loading when the operator moves on
 * (a slow link, a loaded server) finishes into its detached element, never over the page that
 * followed it, and its live-update subscription is dropped at once.
 */
async function route(): Promise<void> {
  cleanup?.();
  cleanup = null;
  const mine = ++generation;
  const view = document.createElement('div');
  app.replaceChildren(view);
  const setCleanup = (fn: () => void): void => {
    if (mine === generation) cleanup = fn;
    else fn();
  };
  const path = location.hash.replace(/^#/, '') || '/fleets';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  renderHeader();
  if (!token() && parts[0] !== 'login') {
    location.hash = '#/login';
    return;
  }
  try {
    if (parts[0] === 'login') loginView(view);
    else if (parts[0] === 'fleets' && parts[1]) {
      const tab = TABS.find((t) => t === parts[2]) ?? 'devices';
      await fleetView(view, parts[1], tab, setCleanup);
    } else if (parts[0] === 'devices' && parts[1]) await deviceView(view, parts[1], setCleanup);
    else if (parts[0] === 'rollouts' && parts[1]) await rolloutView(view, parts[1], setCleanup);
    else if (parts[0] === 'keys') await keysView(view);
    else if (parts[0] === 'audit')
      await auditView(view, parts[1] && parts[1] !== '-' ? parts[1] : null, Number(parts[2]) || 24);
    else await fleetsView(view);
  } catch (error) {
    mount(
      view,
      h(
        'section',
        { class: 'card' },
        h('h1', {}, 'Something went wrong'),
        h('p', { class: 'error' }, (error as Error).message),
        h('a', { href: '#/fleets' }, 'Back to fleets'),
      ),
    );
  }
}

function renderHeader(): void {
  mount(
    header,
    h('a', { href: '#/fleets', class: 'brand' }, 'Ferry'),
    token() ? h('a', { href: '#/keys', class: 'link', id: 'nav-keys' }, 'API keys') : null,
    token() ? h('a', { href: '#/audit', class: 'link', id: 'nav-audit' }, 'Audit log') : null,
    token()
      ? h(
          'button',
          {
            class: 'link',
            onclick: () => {
              setToken(null);
              location.hash = '#/login';
            },
          },
          'Sign out',
        )
      : null,
  );
}

window.addEventListener('hashchange', () => void route());
void route();
