import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Browser, Page, chromium } from 'playwright-core';
import type { AuditEntry, Principal } from '@ferry/protocol';
import { createFleet } from './support/mqtt-devices';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

const ROOT = join(__dirname, '..');

/** The dashboard's API keys and audit log pages in a real browser against a real server. */
describe.each(DATABASE_KINDS)('dashboard: API keys and the audit log (%s)', (kind) => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, 'apps', 'dashboard', 'build.mjs')], { stdio: 'inherit' });
    server = await startTestServer(kind);
    await createFleet(server, 'Dash Keys');
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => {
      throw error;
    });
    page.on('dialog', (dialog) => void dialog.accept());
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('creates a scoped key shown once, refuses to drop the bootstrap token without an admin key, and shows the audit log', async () => {
    await page.goto(`${server.url}/dashboard/#/login`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/fleets/);
    await page.click('#nav-keys');
    await page.getByText('No API key yet').waitFor();
    await page.fill('#key-name', 'ops-viewer');
    await page.selectOption('#key-role', 'viewer');
    await page.selectOption('#key-fleets', { label: 'dash-keys' });
    await page.click('#create-api-key button[type=submit]');
    const key = (await page.locator('#new-api-key').textContent())?.trim() ?? '';
    expect(key).toMatch(/^fk_/);
    const me = (await (await server.api('/v1/auth/whoami', { token: key })).json()) as Principal;
    expect(me).toMatchObject({ name: 'ops-viewer', role: 'viewer' });
    expect(me.fleetIds).toHaveLength(1);
    await page.locator('#api-keys').getByText('ops-viewer').waitFor();
    await page.click('#disable-bootstrap');
    await page.getByText(/create an admin API key first/).waitFor();

    await page.click('#nav-audit');
    await page.locator('#audit').getByText('apiKeys.create').waitFor();
    await page.locator('#audit').getByText('auth.whoami').first().waitFor();

    // Signed in with the viewer key: its sign-in is audited and the keys page is refused.
    await page.getByText('Sign out').click();
    await page.fill('#token', key);
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/fleets/);
    await page.getByText('dash-keys').first().waitFor();
    await page.goto(`${server.url}/dashboard/#/keys`);
    await page.getByText(/viewer key ops-viewer may not GET/).waitFor();
    const entries = (await (await server.api('/v1/audit?actor=ops-viewer')).json()) as AuditEntry[];
    expect(entries.map((e) => [e.action, e.outcome])).toEqual(
      expect.arrayContaining([
        ['auth.whoami', 'ok'],
        ['apiKeys.list', 'denied'],
      ]),
    );
  });

  it('keeps the page the operator moved to when the one before it finishes loading late', async () => {
    await page.goto(`${server.url}/dashboard/#/login`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/fleets/);
    await page.getByText('dash-keys').first().waitFor();
    await page.click('#nav-audit');
    await page.locator('#audit').waitFor();
    // A slow link (or a loaded server): the fleets page's per-fleet answers take 2 s.
    const slow = /\/v1\/fleets\/[^/]+\/(devices|releases|rollouts)/;
    await page.route(slow, async (request) => {
      await new Promise((r) => setTimeout(r, 2000));
      await request.continue().catch(() => undefined);
    });
    await page.click('a.brand'); // to the fleets page, which waits for its answers
    await page.click('#nav-keys'); // and on at once
    await page.locator('#key-role').waitFor();
    // The fleets page's answers arrive after the keys page is up: the keys page stays.
    await new Promise((r) => setTimeout(r, 3500));
    await page.unroute(slow);
    expect(await page.locator('#key-role').count()).toBe(1);
    expect(await page.locator('li.fleet').count()).toBe(0);
  });
});
