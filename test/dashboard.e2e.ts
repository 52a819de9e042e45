import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser, Page, chromium } from 'playwright-core';
import { Device, ProvisioningKey, Release } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { TestFleet, createFleet } from './support/mqtt-devices';
import { WorkerProcess, startWorker } from './support/worker-process';
import { ServerPlace, json, layersOf, newPlace, startServerAt, until } from './support/simulator-harness';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS } from './support/test-server';

const ROOT = join(__dirname, '..');
const RESULTS = join(ROOT, 'test-results');

/** 192 KiB of pseudo-random bytes; `edit` changes a few KiB of it, as a new version of a binary would. */
function binary(edit: number): string {
  const out = Buffer.alloc(192 * 1024);
  let x = 12345;
  for (let i = 0; i < out.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  out.fill(edit, 64 * 1024, 64 * 1024 + edit * 2048);
  return out.toString('latin1');
}

/** A release of a base layer and an app layer holding a binary: v2 of the binary differs a little. */
async function pushApp(
  server: TestServer,
  fleet: TestFleet,
  version: number,
  work: string,
): Promise<Release> {
  const base = gnuTarLayer(join(work, 'base'), { 'etc/os-release': 'ferry dashboard test\n' });
  const app = gnuTarLayer(join(work, `v${version}`), {
    'app/pump-controller': binary(version),
    'app/VERSION': `${version}\n`,
  });
  const response = await server.api(`/v1/fleets/${fleet.slug}/releases?version=${version}`, {
    method: 'POST',
    body: await dockerArchive([base, app], { repoTag: 'pump:latest' }),
    headers: { 'content-type': 'application/x-tar' },
  });
  return json<Release>(response, 201);
}

describe.each(DATABASE_KINDS)('web dashboard in a real browser (%s)', (kind) => {
  let place: ServerPlace;
  let server: TestServer & { remove: () => Promise<void> };
  let browser: Browser;
  let page: Page;
  let fleet: TestFleet;
  let v1: Release;
  let simulator: Simulator;
  let worker: WorkerProcess;
  /** Every device fails to install this release. */
  let failingRelease: string | null = null;
  /** Every device starts downloading this release and then goes silent. */
  let hangingRelease: string | null = null;
  let work: string;

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, 'apps', 'dashboard', 'build.mjs')], { stdio: 'inherit' });
    if (!existsSync(join(ROOT, 'apps', 'worker', 'dist', 'main.js')))
      execFileSync(
        process.execPath,
        [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', join(ROOT, 'apps', 'worker')],
        { stdio: 'inherit' },
      );
    work = mkdtempSync(join(tmpdir(), 'ferry-dashboard-'));
    place = await newPlace({}, kind);
    server = await startServerAt(place);
    // A real delta worker, so the rollout page shows what deltas save.
    worker = await startWorker({
      DATA_DIR: place.dataDir,
      FERRY_QUEUE_PREFIX: place.env.FERRY_QUEUE_PREFIX!,
      LOG_LEVEL: 'warn',
    });
    fleet = await createFleet(server, 'Pumps North');
    v1 = await pushApp(server, fleet, 1, work);
    simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: 8,
      namePrefix: 'pump',
      stepMs: 250,
      running: { id: v1.id, layers: layersOf(v1) },
      behaviour: (_index, releaseId) =>
        failingRelease === releaseId ? 'fail' : hangingRelease === releaseId ? 'hang' : 'ok',
    });
    await server.api(`/v1/devices/${simulator.devices[0]!.uuid}/tags`, {
      method: 'POST',
      json: { tags: { site: 'oslo', ring: 'canary' } },
    });
    await until(
      async () => {
        const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
        return devices.length === 8 && devices.every((d) => d.releaseId === v1.id && d.online)
          ? true
          : undefined;
      },
      15_000,
      'devices running v1',
    );
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => {
      throw error;
    });
  });

  afterAll(async () => {
    await browser?.close();
    await simulator?.stop();
    await worker?.kill();
    await server?.close();
    await server?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('logs in with the token, lists the fleet and its devices with search', async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/dashboard\/#\/login/);
    await page.fill('#token', 'not-the-token-at-all');
    await page.click('button[type=submit]');
    await page.getByText(/Not signed in/).waitFor();
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.getByRole('link', { name: 'Pumps North' }).click();
    await page.locator('table.devices tbody tr').nth(7).waitFor();
    expect(await page.locator('table.devices tbody tr').count()).toBe(8);
    expect(await page.locator('text=8 devices · 8 online').count()).toBe(1);
    await page.fill('input[type=search]', 'canary');
    await until(
      async () => ((await page.locator('table.devices tbody tr').count()) === 1 ? true : undefined),
      3000,
      'search',
    );
    await page.fill('input[type=search]', '');
  });

  it('starts a rollout from a release and watches it complete live, without reloading the page', async () => {
    const v2 = await pushApp(server, fleet, 2, work);
    // Devices run v1, so pushing v2 plans the v1 → v2 delta at once; the worker builds it while the
    // rollout's first batch waits for it (waitForDeltasSeconds).
    await page.click('nav.tabs >> text=releases');
    await page.getByRole('button', { name: `Roll out v${v2.version}` }).click();
    await page.fill('input[name=batches]', '1, 50%, 100%');
    await page.fill('input[name=bakeSeconds]', '1');
    await page.fill('input[name=deviceTimeoutSeconds]', '30');
    await page.fill('input[name=waitForDeltasSeconds]', '30');
    await page.getByRole('button', { name: 'Plan (dry run)' }).click();
    await page.getByText(`Plan: v${v2.version} to 8 devices`).waitFor();
    mkdirSync(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, 'dashboard-releases.png'), fullPage: true });
    await page.evaluate(() => ((globalThis as unknown as { loadedOnce: boolean }).loadedOnce = true));
    await page.click('#start-rollout');
    await page.waitForURL(/#\/rollouts\//);
    await page.locator('.live.on').waitFor({ timeout: 10_000 });

    // Collect what the progress line says while the rollout runs: it must move without a reload.
    const seen = new Set<string>();
    let midway = false;
    const deadline = Date.now() + 45_000;
    for (;;) {
      const text = (await page.locator('#progress-text').textContent()) ?? '';
      if (!midway && /^[1-7] of 8 devices/.test(text)) {
        midway = true;
        await page.screenshot({ path: join(RESULTS, 'dashboard-rollout-midway.png'), fullPage: true });
      }
      seen.add(text);
      const state = await page.locator('header.title .badge').first().textContent();
      if (state === 'completed') break;
      if (Date.now() > deadline)
        throw new Error(`rollout not completed in the page; saw ${[...seen].join(' | ')}`);
      await page.waitForTimeout(150);
    }
    expect(await page.evaluate(() => (globalThis as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(
      true,
    );
    expect([...seen].some((t) => /^[1-7] of 8 devices/.test(t))).toBe(true);
    // Moved by pushed events, not only by the page's 5 s clock.
    expect(Number(await page.locator('.live').getAttribute('data-updates'))).toBeGreaterThan(3);
    await until(
      async () =>
        (await page.locator('#progress-text').textContent())?.startsWith('8 of 8') ? true : undefined,
      5000,
      'final count',
    );
    expect(await page.locator('.batches .badge-passed').count()).toBe(3);
    // The batch bars carry their numbers and a legend names each colour with its count.
    expect(
      await page.locator('.batches li[data-batch="3"] .statebar span[data-state=succeeded]').textContent(),
    ).toMatch(/^\d+$/);
    expect(await page.locator('.legend[aria-label=legend] li[data-state=succeeded]').textContent()).toMatch(
      /succeeded 8/i,
    );
    expect(await page.locator('svg.chart polygon').count()).toBeGreaterThan(1);
    expect(await page.locator('#pause').isDisabled()).toBe(true);
    const saving = Number(
      /Deltas save ([\d.]+) %/.exec((await page.locator('.bytes').textContent()) ?? '')?.[1],
    );
    expect(saving).toBeGreaterThan(50);
    expect(simulator.devices.every((d) => d.stats.downloads.some((x) => x.kind === 'delta'))).toBe(true);
    mkdirSync(RESULTS, { recursive: true });
    await page.screenshot({ path: join(RESULTS, 'dashboard-rollout.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-rollout-phone.png'), fullPage: true });
    await page.goto(`${server.url}/dashboard/#/fleets/${fleet.slug}/devices`);
    await page.locator('table.devices tbody tr').nth(7).waitFor();
    await page.screenshot({ path: join(RESULTS, 'dashboard-devices-phone.png'), fullPage: true });
  });

  it('shows a paused rollout with its failures, and resumes and aborts it with the buttons', async () => {
    const v3 = await pushApp(server, fleet, 3, work);
    failingRelease = v3.id;
    const started = await json<{ id: string }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: {
          releaseId: v3.id,
          strategy: {
            batches: [1, '50%', '100%'],
            bakeSeconds: 1,
            maxFailurePercent: 0,
            deviceTimeoutSeconds: 30,
          },
        },
      }),
      201,
    );
    await page.goto(`${server.url}/dashboard/#/rollouts/${started.id}`);
    await page.locator('header.title .badge-paused').waitFor({ timeout: 20_000 });
    await page.locator('table.failures tbody tr').first().waitFor();
    expect(await page.locator('.reason.warn').textContent()).toMatch(/batch 1 failed/);
    expect(await page.locator('table.failures').textContent()).toMatch(/simulated failure/);
    await page.locator('table.failures .badge-rolled_back').waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-rollout-paused.png'), fullPage: true });

    // The fleets page: device count, online now, devices per release, the active rollout.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}/dashboard/#/fleets`);
    const card = page.locator(`li.fleet[data-fleet="${fleet.slug}"]`);
    await card.locator('.fleet-rollout').waitFor();
    expect(await card.locator('.fleet-counts').textContent()).toMatch(/8 devices · 8 online now/);
    expect(await card.locator('.fleet-signing').textContent()).toBe('releases signed by server');
    const perRelease = await card.locator('.release-chart li').allTextContents();
    expect(perRelease.join('|')).toMatch(/v[123]\d+/);
    expect(
      (await card.locator('.release-chart li b').allTextContents()).reduce((sum, n) => sum + Number(n), 0),
    ).toBe(8);
    expect(await card.locator('.fleet-rollout').textContent()).toMatch(/Rollout of v3\s*paused/);
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleets.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleets-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}/dashboard/#/rollouts/${started.id}`);
    await page.locator('header.title .badge-paused').waitFor();

    await page.click('#resume');
    // Batch 2 fails too (every device fails v3): paused again, then aborted from the page.
    await page.locator('.batches li[data-batch="2"] .badge-failed').waitFor({ timeout: 20_000 });
    await page.locator('header.title .badge-paused').waitFor();
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#abort');
    await page.locator('header.title .badge-aborted').waitFor();
    expect(await page.locator('.batches li[data-batch="3"] .badge-canceled').count()).toBe(1);
    expect(await page.locator('#resume').isDisabled()).toBe(true);
  });

  it('flags a device that hangs downloading, once it has been silent for minutes (page clock moved on)', async () => {
    const v4 = await pushApp(server, fleet, 4, work);
    hangingRelease = v4.id;
    const started = await json<{ id: string }>(
      await server.api(`/v1/fleets/${fleet.slug}/rollouts`, {
        method: 'POST',
        json: {
          releaseId: v4.id,
          strategy: { batches: [1, '100%'], bakeSeconds: 1, deviceTimeoutSeconds: 3600 },
        },
      }),
      201,
    );
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Signed in as the login page leaves it: the token in localStorage.
    await context.addInitScript(
      (token) =>
        (
          globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } }
        ).localStorage.setItem('ferry.token', token),
      ADMIN_TOKEN,
    );
    const clocked = await context.newPage();
    await clocked.clock.install();
    await clocked.goto(`${server.url}/dashboard/#/fleets/${fleet.slug}/devices`);
    await clocked.locator('table.devices tbody tr').nth(7).waitFor();
    const hanging = await until(
      async () => {
        const devices = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
        return devices.find((d) => d.status === 'downloading');
      },
      20_000,
      'a device downloading v4',
    );
    await clocked.locator(`tr[data-uuid="${hanging.uuid}"] .badge-downloading`).waitFor();
    expect(await clocked.locator('tr.stuck').count()).toBe(0);
    // Four minutes on the page's clock with no report from the device: it is flagged, with why.
    await clocked.clock.fastForward('04:00');
    await clocked.locator(`tr.stuck[data-uuid="${hanging.uuid}"]`).waitFor({ timeout: 10_000 });
    expect(await clocked.locator(`tr[data-uuid="${hanging.uuid}"] .stuck-note`).textContent()).toMatch(
      /stuck downloading.*no report since [34] min ago while online/,
    );
    expect(await clocked.locator('.toolbar').textContent()).toMatch(/8 devices · 8 online · 1 stuck/);
    // "online" and the report time never contradict: an online device's last report is its own column.
    expect(await clocked.locator('thead').textContent()).toMatch(/Last report/);
    await clocked.screenshot({ path: join(RESULTS, 'dashboard-devices-stuck.png'), fullPage: true });
    await clocked.setViewportSize({ width: 390, height: 844 });
    await clocked.screenshot({ path: join(RESULTS, 'dashboard-devices-stuck-phone.png'), fullPage: true });
    await context.close();
    await server.api(`/v1/rollouts/${started.id}/abort`, { method: 'POST' });
  });

  it('shows an empty releases page with the push command and no empty card', async () => {
    const empty = await createFleet(server, 'Empty Valves');
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}/dashboard/#/fleets/${empty.slug}/releases`);
    await page.locator('.empty pre').waitFor();
    expect(await page.locator('.empty pre').textContent()).toBe(
      `docker save app:1 | npx ferry push ${empty.slug} -`,
    );
    expect(await page.locator('#rollout-form').isVisible()).toBe(false);
    await page.screenshot({ path: join(RESULTS, 'dashboard-releases-empty.png'), fullPage: true });
    // A favicon, served with the page.
    expect(await page.locator('link[rel=icon]').getAttribute('href')).toBe('favicon.svg');
    const icon = await server.api('/dashboard/favicon.svg', { token: null });
    expect(icon.status).toBe(200);
    expect(await icon.text()).toMatch(/^<svg/);
  });

  it('creates a provisioning key and shows the command that registers a device', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}/dashboard/#/fleets/${fleet.slug}/provisioning`);
    await page.click('#create-key');
    const key = (await page.locator('pre.key').textContent()) ?? '';
    expect(key).toMatch(/^fp_/);
    expect(await page.getByText(`--key ${key} --count 10`).count()).toBe(1);

    // Revoked from the page: the row says so and the key no longer registers a device.
    const keys = await json<ProvisioningKey[]>(
      await server.api(`/v1/fleets/${fleet.slug}/provisioning-keys`),
    );
    const created = keys.find((k) => key.startsWith(k.prefix))!;
    expect(await page.locator(`tr[data-key="${created.id}"]`).textContent()).toMatch(/active/);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click(`tr[data-key="${created.id}"] button.revoke`);
    await page
      .locator(`tr[data-key="${created.id}"] td[data-label=Status]`, { hasText: /^revoked/ })
      .waitFor();
    expect(await page.locator(`tr[data-key="${created.id}"] button.revoke`).count()).toBe(0);
    const register = await server.api('/v1/device/register', {
      token: null,
      method: 'POST',
      json: { provisioningKey: key, name: 'after-revoke' },
    });
    expect(register.status).toBeGreaterThanOrEqual(400);
    expect(register.status).toBeLessThan(500);
    await page.screenshot({ path: join(RESULTS, 'dashboard-provisioning.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(RESULTS, 'dashboard-provisioning-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    // The API is untouched by the static files next to it.
    expect((await server.api('/v1/fleets', { token: null })).status).toBe(401);
    expect((await server.api('/dashboard/app.js', { token: null })).status).toBe(200);
  });

  it('says what to do when a completed rollout still has a device rolling back, and shows the update policy', async () => {
    const other = await createFleet(server, 'Rollback South');
    const r1 = await pushApp(server, other, 1, work);
    let r2: Release | null = null;
    // Device 0 comes up on r2 and crashes while the batch bakes, then goes silent on its way back to r1:
    // it stays rolling back.
    const fleetSimulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: other.provisioningKey,
      count: 3,
      namePrefix: 'south',
      stepMs: 50,
      crashAfterMs: 500,
      running: { id: r1.id, layers: layersOf(r1) },
      behaviour: (index, releaseId) =>
        index !== 0 ? 'ok' : releaseId === r2?.id ? 'crash' : releaseId === r1.id ? 'hang' : 'ok',
    });
    try {
      r2 = await pushApp(server, other, 2, work);
      const started = await json<{ id: string }>(
        await server.api(`/v1/fleets/${other.slug}/rollouts`, {
          method: 'POST',
          json: {
            releaseId: r2.id,
            strategy: { batches: ['100%'], bakeSeconds: 4, maxFailurePercent: 100, rollback: 'failed' },
          },
        }),
        201,
      );
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${server.url}/dashboard/#/rollouts/${started.id}`);
      await page.locator('header.title .badge-completed').waitFor({ timeout: 30_000 });
      const note = page.locator('#still-rolling-back');
      const view = await json<{ counts: Record<string, number>; failures: unknown[] }>(
        await server.api(`/v1/rollouts/${started.id}`),
      );
      expect(view.counts).toEqual({ succeeded: 2, rolling_back: 1 });
      await note.waitFor({ timeout: 10_000 });
      expect(await note.textContent()).toMatch(
        /^1 device of this completed rollout is still rolling back to its previous release\. .*power-cycle it or remove it\.$/,
      );
      expect(await page.locator('.legend li[data-state=rolling_back]').textContent()).toMatch(/1/);
      await page.screenshot({ path: join(RESULTS, 'dashboard-rollout-rolling-back.png'), fullPage: true });

      // The fleet's rollouts tab shows its update policy, one row per level.
      await page.goto(`${server.url}/dashboard/#/fleets/${other.slug}/rollouts`);
      await page.locator('section.update-policy p.muted').waitFor();
      expect(await page.locator('section.update-policy').textContent()).toMatch(/any time, at full speed/);
      for (const body of [
        { maintenanceWindows: ['Mon-Fri 02:00-04:00 Europe/Berlin'] },
        { tag: 'link=lte', downloadRate: 50_000, downloadWindows: ['daily 00:00-06:00 UTC'] },
      ])
        await json(
          await server.api(`/v1/fleets/${other.slug}/update-policy`, { method: 'PUT', json: body }),
          200,
        );
      await page.reload();
      await page.locator('table.policies tr[data-level="tag link=lte"]').waitFor();
      expect(await page.locator('table.policies tr[data-level="fleet"]').textContent()).toMatch(
        /fleetMon-Fri 02:00-04:00 Europe\/Berlin––/,
      );
      expect(await page.locator('table.policies tr[data-level="tag link=lte"]').textContent()).toBe(
        'tag link=lte–daily 00:00-06:00 UTC50 kB/s',
      );
      await page.screenshot({ path: join(RESULTS, 'dashboard-update-policy.png'), fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: join(RESULTS, 'dashboard-update-policy-phone.png'), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 900 });
    } finally {
      await fleetSimulator.stop();
    }
  });
});
