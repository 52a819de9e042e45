import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Browser, Page, chromium } from 'playwright-core';
import { Device, DeviceVariables, VariableList } from '@ferry/protocol';
import { Simulator } from '../devices/simulator/src';
import { TestFleet, createFleet, eventually, pushRelease } from './support/mqtt-devices';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

const ROOT = join(__dirname, '..');
const RESULTS = join(ROOT, 'test-results');

describe.each(DATABASE_KINDS)('dashboard configuration variables, with simulated devices (%s)', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let simulator: Simulator;
  let browser: Browser;
  let page: Page;

  /** Every simulated device reports running the variables version the server holds for it. */
  const allCurrent = (): Promise<Device[]> =>
    eventually(
      async () => {
        const devices = (await (await server.api(`/v1/fleets/${fleet.slug}/devices`)).json()) as Device[];
        return devices.length === 2 &&
          devices.every((d) => d.variables.reportedVersion === d.variables.version)
          ? devices
          : undefined;
      },
      15_000,
      'devices reporting the current variables version',
    );

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, 'apps', 'dashboard', 'build.mjs')], { stdio: 'inherit' });
    mkdirSync(RESULTS, { recursive: true });
    server = await startTestServer(kind);
    fleet = await createFleet(server, 'Kilns');
    await pushRelease(server, fleet, 'v1');
    simulator = await Simulator.start({
      url: server.url,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      provisioningKey: fleet.provisioningKey,
      count: 2,
      namePrefix: 'kiln',
      stepMs: 100,
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => {
      throw error;
    });
    await page.goto(`${server.url}/dashboard/#/login`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(/#\/fleets$/);
  });

  afterAll(async () => {
    await browser?.close();
    await simulator?.stop();
    await server?.close();
  });

  const setInForm = async (
    name: string,
    value: string,
    options: { service?: string; secret?: boolean } = {},
  ) => {
    await page.fill('#var-name', name);
    await page.fill('#var-value', value);
    await page.selectOption('#var-service', options.service ?? '');
    if (options.secret) await page.check('#var-secret');
    await page.click('#variable-form button[type=submit]');
  };
  const row = (name: string, level: string) => page.locator(`tr[data-name="${name}"][data-level="${level}"]`);

  it('sets fleet variables on the fleet page; simulated devices fetch them and report the version', async () => {
    // The simulated devices fetched the (empty) variables when they connected.
    await allCurrent();
    await page.goto(`${server.url}/dashboard/#/fleets/${fleet.slug}/variables`);
    await page.getByText('No variables yet.').waitFor();
    await setInForm('SITE', 'oslo');
    await row('SITE', 'fleet').waitFor();
    await setInForm('MODE', 'eco', { service: 'app' });
    await row('MODE', 'fleet+service').waitFor();
    await setInForm('API_TOKEN', 'hunter2-very-secret', { secret: true });
    await row('API_TOKEN', 'fleet').waitFor();
    expect(await row('API_TOKEN', 'fleet').locator('td').nth(1).textContent()).toBe('•••••• secret');
    expect(await row('MODE', 'fleet+service').locator('td').nth(3).textContent()).toBe('app');
    // The secret is nowhere in the page, only in what the device fetches.
    expect(await page.content()).not.toContain('hunter2');

    // A name the server refuses: its reason, and nothing set.
    await setInForm('FERRY_ID', 'x');
    await page.getByText(/reserved for Ferry/).waitFor();
    await page.screenshot({ path: join(RESULTS, 'dashboard-fleet-variables.png'), fullPage: true });

    const devices = await allCurrent();
    const first = simulator.devices.find((d) => d.uuid === devices[0]!.uuid)!;
    expect(first.variables).toMatchObject({
      fleet: { SITE: 'oslo', API_TOKEN: 'hunter2-very-secret' },
      fleetServices: { app: { MODE: 'eco' } },
    } satisfies Partial<DeviceVariables>);
    expect(first.variables?.version).toBe(devices[0]!.variables.version);
  });

  it('overrides a fleet value on the device page, shows what the device runs, and deletes it again', async () => {
    await page.goto(`${server.url}/dashboard/#/fleets/${fleet.slug}/devices`);
    const target = simulator.devices[0]!;
    await page.locator(`tr[data-uuid="${target.uuid}"] a`).click();
    await page.waitForURL(new RegExp(`#/devices/${target.uuid}$`));
    await row('SITE', 'fleet').waitFor();
    expect(await row('SITE', 'fleet').locator('td').last().textContent()).toBe('inherited');
    await setInForm('SITE', 'bergen');
    await row('SITE', 'device').waitFor();
    // The fleet's value is struck through: the device's own wins.
    await page.locator('tr.overridden[data-name="SITE"][data-level="fleet"]').waitFor();
    // The device fetched its new variables and reported them: the page says so live.
    await page.getByText(/the device runs it/).waitFor({ timeout: 15_000 });
    expect(target.variables?.device).toEqual({ SITE: 'bergen' });
    const list = (await (await server.api(`/v1/devices/${target.uuid}/variables`)).json()) as VariableList;
    expect(list.reportedVersion).toBe(list.version);
    await page.screenshot({ path: join(RESULTS, 'dashboard-device-variables.png'), fullPage: true });

    await page.getByRole('button', { name: 'delete SITE' }).click();
    await page.locator('tr[data-name="SITE"][data-level="device"]').waitFor({ state: 'detached' });
    expect(await page.locator('tr.overridden').count()).toBe(0);
    await eventually(async () => (target.variables?.device.SITE === undefined ? true : undefined), 15_000);
  });
});
