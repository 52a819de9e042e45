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

/** Hash routes: #/login, #/fleets, #/fleets/{slug}/{tab}, #/devices/{uuid}, #/rollouts/{id}, #/keys, #/audit/{fleet|-}/{hours}. */
async function route(): Promise<void> {
  cleanup?.();
  cleanup = null;
  const path = location.hash.replace(/^#/, '') || '/fleets';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  renderHeader();
  if (!token() && parts[0] !== 'login') {
    location.hash = '#/login';
    return;
  }
  try {
    if (parts[0] === 'login') loginView(app);
    else if (parts[0] === 'fleets' && parts[1]) {
      const tab = TABS.find((t) => t === parts[2]) ?? 'devices';
      await fleetView(app, parts[1], tab, (fn) => (cleanup = fn));
    } else if (parts[0] === 'devices' && parts[1]) await deviceView(app, parts[1], (fn) => (cleanup = fn));
    else if (parts[0] === 'rollouts' && parts[1]) await rolloutView(app, parts[1], (fn) => (cleanup = fn));
    else if (parts[0] === 'keys') await keysView(app);
    else if (parts[0] === 'audit')
      await auditView(app, parts[1] && parts[1] !== '-' ? parts[1] : null, Number(parts[2]) || 24);
    else await fleetsView(app);
  } catch (error) {
    mount(
      app,
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
