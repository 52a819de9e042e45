import { Readable } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceVariables, VariableList } from '@ferry/protocol';
import { buildCli, ferry, type FerryRun } from './support/cli';
import { TestDevice, TestFleet, createFleet, pushRelease, registerDevice } from './support/mqtt-devices';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

describe.each(DATABASE_KINDS)('ferry env: configuration variables from the command line (%s)', (kind) => {
  let server: TestServer;
  let fleet: TestFleet;
  let device: TestDevice;
  let work: string;
  const run = (args: string[], stdin?: string): Promise<FerryRun> =>
    ferry(['env', ...args], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN, FERRY_CONFIG: join(work, 'none.json') },
      ...(stdin !== undefined ? { stdin: Readable.from([stdin]) } : {}),
    });
  const own = async (): Promise<DeviceVariables> =>
    (await (await server.api('/v1/device/variables', { token: device.apiKey })).json()) as DeviceVariables;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-cli-env-'));
    [server] = await Promise.all([startTestServer(kind), buildCli()]);
    fleet = await createFleet(server, 'Env');
    device = await registerDevice(server, fleet);
    await pushRelease(server, fleet, 'v1');
  });
  afterAll(async () => {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('sets variables at the four levels and shows the effective values with the level of each', async () => {
    expect(await run(['set', fleet.slug, 'SITE=fleet-site'])).toMatchObject({ code: 0 });
    expect(await run(['set', fleet.slug, 'SITE=app-site', '--service', 'app'])).toMatchObject({ code: 0 });
    expect(await run(['set', fleet.slug, 'CAL=1.0'])).toMatchObject({ code: 0 });
    expect(await run(['set', fleet.slug, 'CAL=1.07', '--device', device.uuid.slice(0, 8)])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/set CAL \(device\) on device/) as string,
    });
    const eq = await run([
      'set',
      fleet.slug,
      'URL=http://x/?a=b',
      '--device',
      device.uuid,
      '--service',
      'app',
    ]);
    expect(eq.code).toBe(0);

    const shown = await run([fleet.slug, '--device', device.uuid, '--service', 'app']);
    expect(shown.code).toBe(0);
    const rows = shown.stdout.split('\n').filter((l) => /^(SITE|CAL|URL) /.test(l));
    expect(rows.map((l) => l.split(/\s{2,}/))).toEqual([
      ['CAL', '1.07', 'device', '*'],
      ['SITE', 'app-site', 'fleet+service', 'app'],
      ['URL', 'http://x/?a=b', 'device+service', 'app'],
    ]);
    expect(shown.stdout).toMatch(/variables: +v\d+ \(not reported yet\)/);

    const list = JSON.parse((await run([fleet.slug, '--json'])).stdout) as VariableList;
    expect(list.variables.map((v) => [v.name, v.level]).sort()).toEqual([
      ['CAL', 'fleet'],
      ['SITE', 'fleet'],
      ['SITE', 'fleet+service'],
    ]);
    expect((await own()).deviceServices.app?.URL).toBe('http://x/?a=b');
  });

  it('reads a secret from stdin and never prints it back', async () => {
    const set = await run(['set', fleet.slug, 'API_TOKEN', '--secret'], 'tok-very-secret\n');
    expect(set).toMatchObject({ code: 0, stdout: expect.stringMatching(/secret/) as string });
    for (const args of [
      [fleet.slug],
      [fleet.slug, '--json'],
      [fleet.slug, '--device', device.uuid, '--json'],
    ]) {
      const result = await run(args);
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain('tok-very-secret');
    }
    expect((await run([fleet.slug])).stdout).toMatch(/API_TOKEN +<secret> +fleet/);
    expect((await own()).fleet.API_TOKEN).toBe('tok-very-secret');
  });

  it('removes a variable from one level, and the next one shows through', async () => {
    expect(await run(['rm', fleet.slug, 'CAL', '--device', device.uuid])).toMatchObject({ code: 0 });
    expect((await own()).device).toEqual({});
    expect((await own()).fleet.CAL).toBe('1.0');
    const again = await run(['rm', fleet.slug, 'CAL', '--device', device.uuid]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/no variable CAL/);
  });

  it('refuses bad input with the server reason and a device of another fleet', async () => {
    const bad = await run(['set', fleet.slug, '1BAD=x']);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/name/);
    const service = await run(['set', fleet.slug, 'A=x', '--service', 'nosuch']);
    expect(service.code).toBe(3);
    expect(service.stderr).toMatch(/nosuch.*its services: app/);
    const otherFleet = await createFleet(server, 'Other');
    const wrong = await run(['set', otherFleet.slug, 'A=x', '--device', device.uuid]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/belongs to another fleet/);
    expect((await run(['set', fleet.slug, 'NOVALUE'])).code).toBe(0);
    expect((await own()).fleet.NOVALUE).toBe('');
  });
});
