import { execFileSync } from 'node:child_process';
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Device, Fleet, RegisteredDevice, Release } from '@ferry/protocol';
import { buildCli, ferry, ferryOnTerminal, type FerryRun } from './support/cli';
import { ImageFixtures, buildImageFixtures } from './support/image-fixtures';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Exit codes as documented in `ferry --help` and docs/cli.md. */
const EXIT = { ok: 0, usage: 1, refused: 3, unreachable: 4, notLoggedIn: 5 };

describe.each(DATABASE_KINDS)('ferry CLI against a real server (built binary, subprocess) (%s)', (kind) => {
  let server: TestServer;
  let fixtures: ImageFixtures;
  let work: string;
  let configPath: string;
  /** Runs ferry with this suite's config file (the saved login). */
  const run = (args: string[], options: Parameters<typeof ferry>[1] = {}): Promise<FerryRun> =>
    ferry(args, { ...options, env: { FERRY_CONFIG: configPath, ...options.env } });
  const json = <T>(result: FerryRun): T => {
    expect(result).toMatchObject({ code: 0, stderr: '' });
    return JSON.parse(result.stdout) as T;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
    configPath = join(work, 'config', 'ferry', 'config.json');
    fixtures = buildImageFixtures(join(work, 'fixtures'));
    [server] = await Promise.all([startTestServer(kind), buildCli()]);
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  describe('login and whoami', () => {
    it('refuses a bad token with exit 5 and saves nothing', async () => {
      const result = await run(['login', '--url', server.url, '--token', 'not-the-admin-token']);
      expect(result.code).toBe(EXIT.notLoggedIn);
      expect(result.stderr).toBe(
        'ferry login: the server refused the token (401 Unauthorized: invalid token: not a working operator key)\n',
      );
      expect(() => statSync(configPath)).toThrow(/ENOENT/);
    });

    it('says it cannot reach a server that is not there, with exit 4', async () => {
      const port = await closedPort();
      const result = await run(['login', '--url', `http://127.0.0.1:${port}`, '--token', ADMIN_TOKEN]);
      expect(result.code).toBe(EXIT.unreachable);
      expect(result.stderr).toBe(
        `ferry login: cannot reach http://127.0.0.1:${port}: connection refused (ECONNREFUSED)\n`,
      );
    });

    it('commands before any login exit 5 and say how to log in', async () => {
      const result = await run(['fleets']);
      expect(result.code).toBe(EXIT.notLoggedIn);
      expect(result.stderr).toMatch(
        /^ferry fleets: not logged in: run "ferry login --url URL --token TOKEN"/,
      );
    });

    it('checks the token, then saves URL and token in a 0600 file (token read from stdin)', async () => {
      const result = await ferry(['login', '--url', `${server.url}/`, '--token', '-'], {
        env: { FERRY_CONFIG: configPath },
        stdin: (await import('node:stream')).Readable.from([`${ADMIN_TOKEN}\n`]),
      });
      expect(result).toMatchObject({ code: 0, stderr: '' });
      expect(result.stdout).toBe(`logged in to ${server.url} (0 fleets); saved to ${configPath}\n`);
      expect(statSync(configPath).mode & 0o777).toBe(0o600);
      expect(statSync(join(configPath, '..')).mode & 0o777).toBe(0o700);
      expect(JSON.parse(readFileSync(configPath, 'utf8'))).toEqual({ url: server.url, token: ADMIN_TOKEN });
    });

    it('whoami shows the URL, a valid token and a ready server', async () => {
      const text = await run(['whoami']);
      expect(text.code).toBe(0);
      expect(text.stdout).toContain(`server: ${server.url} (from ${configPath})`);
      expect(text.stdout).toMatch(/token: {2}valid \(from .*config\.json\), 0 fleets/);
      expect(text.stdout).toContain('ready:  yes (database ok, redis ok)');
      expect(json(await run(['whoami', '--json']))).toMatchObject({
        url: server.url,
        token: 'valid',
        ready: true,
      });
    });

    it('whoami says when the server cannot be reached, with exit 4', async () => {
      const port = await closedPort();
      const result = await run(['whoami'], { env: { FERRY_URL: `http://127.0.0.1:${port}` } });
      expect(result.code).toBe(EXIT.unreachable);
      expect(result.stdout).toContain(`server: http://127.0.0.1:${port} (from FERRY_URL)`);
      expect(result.stdout).toContain('ready:  unreachable');
      expect(result.stderr).toContain('connection refused (ECONNREFUSED)');
    });

    it('answers 5xx and a not-ready server with exit 4, and a URL that is not a Ferry API clearly', async () => {
      // A stand-in for what cannot be provoked on the real server from here: a failing or proxied API.
      const fake = createHttpServer((request, response) => {
        if (request.url === '/readyz') {
          response.writeHead(503, { 'content-type': 'application/json' });
          response.end(
            JSON.stringify({
              statusCode: 503,
              error: 'Service Unavailable',
              message: 'not ready: redis: connection lost',
            }),
          );
        } else if (request.url === '/v1/fleets') {
          response.writeHead(500, { 'content-type': 'application/json' });
          response.end(
            JSON.stringify({ statusCode: 500, error: 'Internal Server Error', message: 'internal error' }),
          );
        } else if (request.url === '/proxy/v1/fleets') {
          response.writeHead(502, { 'content-type': 'text/html' });
          response.end('<html><body>Bad gateway</body></html>');
        } else {
          response.writeHead(200, { 'content-type': 'text/html' });
          response.end('<html>a web site</html>');
        }
      });
      await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      try {
        const env = { FERRY_URL: url, FERRY_TOKEN: ADMIN_TOKEN };
        const failed = await run(['fleets'], { env });
        expect(failed).toMatchObject({
          code: EXIT.unreachable,
          stderr: 'ferry fleets: the server failed (500 Internal Server Error: internal error)\n',
        });
        const whoami = await run(['whoami'], { env });
        expect(whoami.code).toBe(EXIT.unreachable);
        expect(whoami.stdout).toContain(
          'ready:  no (the server failed (503 Service Unavailable: not ready: redis: connection lost))',
        );
        const proxied = await run(['fleets'], { env: { ...env, FERRY_URL: `${url}/proxy` } });
        expect(proxied).toMatchObject({
          code: EXIT.unreachable,
          stderr:
            'ferry fleets: the server failed (502 Bad Gateway: the answer is not a Ferry error (a proxy, or not a Ferry server?))\n',
        });
        const website = await run(['login', '--url', `${url}/site`, '--token', ADMIN_TOKEN]);
        expect(website).toMatchObject({
          code: EXIT.unreachable,
          stderr: `ferry login: the answer from ${url}/site/v1/auth/whoami is not JSON: is this a Ferry server?\n`,
        });
      } finally {
        await new Promise((resolve) => fake.close(resolve));
      }
    });

    it('FERRY_TOKEN overrides the saved token; whoami reports it refused with exit 5', async () => {
      const result = await run(['whoami', '--json'], { env: { FERRY_TOKEN: 'wrong-token-0123456789' } });
      expect(result.code).toBe(EXIT.notLoggedIn);
      expect(JSON.parse(result.stdout)).toMatchObject({
        token: 'refused',
        tokenFrom: 'FERRY_TOKEN',
        ready: true,
      });
      expect(result.stderr).toContain('the server refused the token (401 Unauthorized');
    });
  });

  let fleet: Fleet;
  let provisioningKey: string;

  describe('fleets and provisioning keys', () => {
    it('creates a fleet and lists it in text and JSON', async () => {
      const created = await run(['fleet', 'create', 'Pumps East', '--arch', 'amd64']);
      expect(created).toMatchObject({ code: 0, stderr: '' });
      expect(created.stdout).toMatch(/^created fleet pumps-east \(amd64, id [0-9a-f-]{36}\)\n/);
      const fleets = json<Fleet[]>(await run(['fleets', '--json']));
      expect(fleets.map((f) => f.slug)).toEqual(['pumps-east']);
      fleet = fleets[0]!;
      const text = await run(['fleets']);
      expect(text.stdout.split('\n')[0]).toMatch(/^FLEET\s+NAME\s+ARCH\s+SIGNING\s+ID\s+CREATED$/);
      expect(text.stdout).toMatch(new RegExp(`pumps-east\\s+Pumps East\\s+amd64\\s+server\\s+${fleet.id}`));
      expect(json<Fleet>(await run(['fleet', 'pumps-east', '--json'])).id).toBe(fleet.id);
    });

    it('refuses a taken name with 409 (exit 3) and says how to choose another name or slug', async () => {
      const taken = await run(['fleet', 'create', 'Pumps East', '--arch', 'amd64']);
      expect(taken.code).toBe(EXIT.refused);
      expect(taken.stderr).toMatch(
        /^ferry fleet create: 409 Conflict: a fleet with slug "pumps-east" exists .*choose another name, or give another slug .*--slug/,
      );
      expect(json<Fleet[]>(await run(['fleets', '--json'])).map((f) => f.slug)).toEqual(['pumps-east']);
    });

    it('rejects an unknown architecture as a usage error (exit 1)', async () => {
      const result = await run(['fleet', 'create', 'X', '--arch', 'sparc']);
      expect(result.code).toBe(EXIT.usage);
      expect(result.stderr).toContain(
        "argument 'sparc' is invalid. Allowed choices are aarch64, armv7hf, amd64",
      );
    });

    it('makes a provisioning key and prints it with the device command line', async () => {
      const text = await run(['fleet', 'key', 'pumps-east', '--name', 'lab']);
      expect(text.code).toBe(0);
      const key = /^ {2}(fp_\S+)$/m.exec(text.stdout)?.[1];
      expect(key).toBeDefined();
      expect(text.stdout).toContain(
        `FERRY_API_URL=${server.url} FERRY_PROVISIONING_KEY=${key} node ferry-agent.js`,
      );
      const second = json<{ key: string; id: string }>(await run(['fleet', 'key', 'pumps-east', '--json']));
      expect(second.key).not.toBe(key);
      provisioningKey = second.key;
      // --quiet: the key alone, for KEY=$(ferry fleet key FLEET -q).
      const quiet = await run(['fleet', 'key', 'pumps-east', '-q']);
      expect(quiet).toMatchObject({ code: 0, stderr: '' });
      expect(quiet.stdout).toMatch(/^fp_\S+\n$/);

      const keys = json<{ id: string; name: string | null; revokedAt: string | null }[]>(
        await run(['fleet', 'keys', 'pumps-east', '--json']),
      );
      expect(keys).toHaveLength(3);
      const lab = keys.find((k) => k.name === 'lab')!;
      const revoked = await run(['fleet', 'key', 'revoke', 'pumps-east', lab.id.slice(0, 8)]);
      expect(revoked).toMatchObject({
        code: 0,
        stdout: `revoked provisioning key ${lab.id} of fleet pumps-east\n`,
      });
      const register = await server.api('/v1/device/register', {
        method: 'POST',
        token: null,
        json: { provisioningKey: key },
      });
      expect(register.status).toBe(401);
      const listed = await run(['fleet', 'keys', 'pumps-east']);
      expect(listed.stdout).toMatch(new RegExp(`${lab.id}\\s+fp_\\S+…\\s+lab\\s+\\S+ \\S+\\s+\\d{4}-`));
    });

    it('an unknown fleet is exit 3 with the server message', async () => {
      const result = await run(['fleet', 'keys', 'nope']);
      expect(result).toMatchObject({
        code: EXIT.refused,
        stdout: '',
        stderr: 'ferry fleet keys: 404 Not Found: no fleet "nope"\n',
      });
    });
  });

  describe('devices', () => {
    let device: RegisteredDevice;

    beforeAll(async () => {
      const response = await server.api('/v1/device/register', {
        method: 'POST',
        token: null,
        json: { provisioningKey, name: 'pump-1', deviceType: 'generic-amd64' },
      });
      expect(response.status).toBe(201);
      device = (await response.json()) as RegisteredDevice;
      await server.api('/v1/device/register', {
        method: 'POST',
        token: null,
        json: { provisioningKey, name: 'pump-2' },
      });
    });

    it('lists devices in text and JSON, of all fleets or one, with a search', async () => {
      const text = await run(['devices']);
      expect(text).toMatchObject({ code: 0, stderr: '' });
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^UUID\s+NAME\s+FLEET\s+STATUS\s+ONLINE\s+RELEASE\s+LAST SEEN\s+TAGS$/);
      expect(lines).toHaveLength(3);
      expect(text.stdout).toMatch(
        new RegExp(`${device.uuid}\\s+pump-1\\s+pumps-east\\s+registered\\s+no\\s+-\\s+never\\s+-`),
      );
      const all = json<Device[]>(await run(['devices', '--fleet', 'pumps-east', '--json']));
      expect(all.map((d) => d.name).sort()).toEqual(['pump-1', 'pump-2']);
      const found = json<Device[]>(await run(['devices', '--search', 'pump-2', '--json']));
      expect(found.map((d) => d.name)).toEqual(['pump-2']);
    });

    it('tags a device, filters by tags and removes a tag', async () => {
      const tagged = await run(['device', 'tag', device.uuid, 'site=berlin', 'floor=2']);
      expect(tagged).toMatchObject({ code: 0, stdout: `device ${device.uuid} tags: site=berlin,floor=2\n` });
      const byTag = json<Device[]>(
        await run(['devices', '--tag', 'site=berlin', '--tag', 'floor', '--json']),
      );
      expect(byTag.map((d) => d.uuid)).toEqual([device.uuid]);
      expect(json<Device[]>(await run(['devices', '--tag', 'site=paris', '--json']))).toEqual([]);
      const removed = json<Device>(await run(['device', 'tag', device.uuid, '--rm', 'floor', '--json']));
      expect(removed.tags).toEqual({ site: 'berlin' });
      const bad = await run(['device', 'tag', device.uuid, 'no-equals-sign']);
      expect(bad).toMatchObject({
        code: EXIT.usage,
        stderr: 'ferry device tag: expected key=value, got "no-equals-sign"\n',
      });
    });

    it('shows a device in text and JSON', async () => {
      const text = await run(['device', device.uuid]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(
        new RegExp(`^device: +${device.uuid}\nname: +pump-1\nfleet: +pumps-east\nstatus: +registered\n`),
      );
      expect(text.stdout).toMatch(/^tags: +site=berlin$/m);
      expect(text.stdout).toMatch(/^type: +generic-amd64$/m);
      expect(json<Device>(await run(['device', device.uuid, '--json'])).name).toBe('pump-1');
      const short = await run(['device', device.uuid.slice(0, 8), '--json']);
      expect(json<Device>(short).uuid).toBe(device.uuid);
    });

    it('asks before removing a device on a terminal: "n" keeps it, "y" removes it', async () => {
      const response = await server.api('/v1/device/register', {
        method: 'POST',
        token: null,
        json: { provisioningKey, name: 'pump-3' },
      });
      const { uuid } = (await response.json()) as RegisteredDevice;
      const question = new RegExp(`remove device ${uuid} \\(pump-3\\)\\? \\[y/N\\]`);
      const kept = await ferryOnTerminal(['device', 'rm', uuid], {
        env: { FERRY_CONFIG: configPath },
        answer: { when: question, text: 'n\r' },
      });
      expect(kept.code).toBe(EXIT.usage);
      expect(kept.output).toContain('ferry device rm: cancelled');
      expect((await server.api(`/v1/devices/${uuid}`)).status).toBe(200);
      const removed = await ferryOnTerminal(['device', 'rm', uuid], {
        env: { FERRY_CONFIG: configPath },
        answer: { when: question, text: 'y\r' },
      });
      expect(removed.code).toBe(0);
      expect(removed.output).toContain(`removed device ${uuid} (pump-3)`);
      expect((await server.api(`/v1/devices/${uuid}`)).status).toBe(404);
    });

    it('does not remove a device without --yes when nobody can be asked; removes it with --yes', async () => {
      const refused = await run(['device', 'rm', device.uuid]);
      expect(refused.code).toBe(EXIT.usage);
      expect(refused.stderr).toContain('not confirmed (stdin is not a terminal; pass --yes)');
      expect((await server.api(`/v1/devices/${device.uuid}`)).status).toBe(200);

      const removed = await run(['device', 'rm', device.uuid, '--yes']);
      expect(removed).toMatchObject({ code: 0, stdout: `removed device ${device.uuid} (pump-1)\n` });
      const gone = await run(['device', device.uuid]);
      expect(gone).toMatchObject({
        code: EXIT.refused,
        stderr: `ferry device: 404 Not Found: no device ${device.uuid}\n`,
      });
    });
  });

  describe('releases', () => {
    let v1: Release & { newLayers: string[] };

    it('pushes a docker-archive file and prints a summary of the release', async () => {
      const result = await run(['push', 'pumps-east', fixtures.v1Docker, '--note', 'first one']);
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const releases = (await (await server.api('/v1/fleets/pumps-east/releases')).json()) as (typeof v1)[];
      v1 = releases[0]!;
      expect(result.stdout).toContain(`pushed release v1 to fleet pumps-east (id ${v1.id})\n`);
      expect(result.stdout).toMatch(/1 service \(app\), 2 layers, [\d.]+ (KiB|MiB); 2 new/);
      for (const layer of v1.services[0]!.layers) {
        expect(result.stdout).toMatch(
          new RegExp(`${layer.diffId.slice(7, 19)}\\s+\\S+ \\S+\\s+\\S+ \\S+\\s+new`),
        );
      }
      expect(result.stdout).toContain('deltas: none queued yet');
      expect(v1.note).toBe('first one');
    });

    it('pushes from stdin (an OCI archive piped in) with --version, and reports stored layers', async () => {
      const result = await run(['push', 'pumps-east', '-', '--version', '7', '--json'], {
        stdin: createReadStream(fixtures.v2Oci),
      });
      const pushed = json<Release & { newLayers: string[]; format: string; deltas: unknown[] }>(result);
      expect(pushed).toMatchObject({ version: 7, format: 'oci-archive', deltas: [] });
      // Layer 1 (busybox) is shared with v1; only the changed app layer is new.
      expect(pushed.newLayers).toHaveLength(1);
      const text = await run(['push', 'pumps-east', '-'], { stdin: createReadStream(fixtures.v2Docker) });
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('pushed release v8 to fleet pumps-east');
      expect(text.stdout).toMatch(/0 new \(0 B\), 2 already stored/);
    });

    it('lists releases and shows one, in text and JSON', async () => {
      const listed = json<Release[]>(await run(['releases', 'pumps-east', '--json']));
      expect(listed.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 7, 8]);
      const text = await run(['releases', 'pumps-east']);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^VERSION\s+ID\s+CREATED\s+SERVICES\s+LAYERS\s+SIZE\s+NOTE$/);
      expect(lines[1]).toMatch(/^v8\s/);
      expect(lines[3]).toMatch(
        new RegExp(`^v1\\s+${v1.id}\\s+\\S+ \\S+\\s+app\\s+2\\s+\\S+ \\S+\\s+first one$`),
      );

      const shown = await run(['release', v1.id]);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(
        new RegExp(`^release: +${v1.id}\nfleet: +pumps-east\nversion: +1\nnote: +first one\n`),
      );
      expect(shown.stdout).toMatch(/^SERVICE\s+IMAGE\s+LAYER\s+SIZE\s+GZIP$/m);
      expect(shown.stdout).toContain(v1.services[0]!.layers[1]!.diffId.slice(7, 19));
      expect(json<Release>(await run(['release', v1.id, '--json'])).manifest.releaseId).toBe(v1.id);
    });

    it('sets one device’s target by vN, and marks an intended downgrade as a rollback in its signed target', async () => {
      const registered = await server.api('/v1/device/register', {
        method: 'POST',
        token: null,
        json: { provisioningKey, name: 'pump-3' },
      });
      const pump = (await registered.json()) as RegisteredDevice;
      const signedTarget = async (): Promise<{ release: { version: number } | null; rollback: boolean }> =>
        (await server.api('/v1/device/target', { token: pump.apiKey })).json() as Promise<{
          release: { version: number } | null;
          rollback: boolean;
        }>;
      const forward = json<Device>(await run(['device', 'target', pump.uuid.slice(0, 8), 'v8', '--json']));
      expect(forward.uuid).toBe(pump.uuid);
      expect(await signedTarget()).toMatchObject({ release: { version: 8 }, rollback: false });
      const back = await run(['device', 'target', pump.uuid, 'v1', '--rollback']);
      expect(back).toMatchObject({
        code: EXIT.ok,
        stdout: `device ${pump.uuid} (pump-3) now targets release ${v1.id} (marked as a rollback)\n`,
      });
      expect(await signedTarget()).toMatchObject({ release: { version: 1 }, rollback: true });
      // Hostile or mistaken references: nothing changes.
      const missing = await run(['device', 'target', pump.uuid, 'v99']);
      expect(missing.code).toBe(EXIT.usage);
      expect(missing.stderr).toMatch(/has no release v99/);
      const unknown = await run(['device', 'target', pump.uuid, '00000000-0000-4000-8000-000000000000']);
      expect(unknown.code).toBe(EXIT.refused);
      expect(unknown.stderr).toMatch(/404/);
      expect((await run(['device', 'target', pump.uuid])).code).toBe(EXIT.usage);
      expect(await signedTarget()).toMatchObject({ release: { version: 1 }, rollback: true });
    });

    it('shows the deltas of a release with their state and totals', async () => {
      const v8 = json<Release[]>(await run(['releases', 'pumps-east', '--json'])).find(
        (r) => r.version === 8,
      )!;
      const planned = await server.api(`/v1/releases/${v8.id}/deltas`, {
        method: 'POST',
        json: { from: v1.id },
      });
      expect(planned.status).toBe(201);
      const text = await run(['deltas', v8.id]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^BASES → TARGET\s+STATE\s+DELTA\s+FULL \(GZIP\)\s+SAVINGS$/m);
      expect(text.stdout).toMatch(
        /[0-9a-f]{12}\+[0-9a-f]{12} → [0-9a-f]{12}\s+(queued|building|ready|full|failed)/,
      );
      expect(text.stdout).toMatch(/^1 delta: 1 \w+$/m);
      expect(json<unknown[]>(await run(['deltas', v8.id, '--json']))).toHaveLength(1);

      // One line per release a device may run (never one total over different bases), by FLEET vN,
      // by -f, and by a unique start of the id.
      const byVersion = await run(['deltas', 'pumps-east', 'v8']);
      expect(byVersion).toMatchObject({ code: 0, stderr: '' });
      expect(byVersion.stdout).toMatch(/^what a device on each release downloads to reach v8:$/m);
      expect(byVersion.stdout).toMatch(/^FROM\s+LAYERS NEEDED\s+DELTAS\s+DOWNLOAD\s+FULL LAYERS\s+SAVED$/m);
      const rows = byVersion.stdout.split('\n').filter((l) => /^v\d+\s/.test(l));
      const older = json<Release[]>(await run(['releases', 'pumps-east', '--json']))
        .filter((r) => r.version < 8)
        .sort((a, b) => b.version - a.version)
        .map((r) => `v${r.version}`);
      expect(older).toContain('v1');
      expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(older);
      expect(byVersion.stdout).toMatch(/^v1\s+1\s+[01]\/1 ready/m);
      expect(byVersion.stdout).toMatch(
        /^a new device \(no release\) downloads [\d.]+ \S+: every layer, gzip'd$/m,
      );
      expect((await run(['deltas', 'v8', '-f', 'pumps-east'])).stdout).toBe(byVersion.stdout);
      expect((await run(['deltas', v8.id.slice(0, 8)])).stdout).toBe(byVersion.stdout);
      expect((await run(['release', 'pumps-east', 'v8', '--json'])).stdout).toBe(
        (await run(['release', v8.id, '--json'])).stdout,
      );
      const versionAlone = await run(['deltas', 'v8']);
      expect(versionAlone).toMatchObject({ code: EXIT.usage });
      expect(versionAlone.stderr).toContain('v8 is a version: name the fleet too (ferry deltas FLEET v8)');
    });

    it('draws a progress bar on a terminal: bytes, rate and ETA for a file; bytes and rate for stdin', async () => {
      const env = { FERRY_CONFIG: configPath };
      const file = await ferryOnTerminal(
        ['push', 'pumps-east', fixtures.v2Docker, '--note', 'on a terminal'],
        { env },
      );
      expect(file.code).toBe(0);
      expect(file.output).toMatch(
        /pushing to pumps-east \[=+\] 100% \| [\d.]+ \w+ \/ [\d.]+ \w+ \| [\d.]+ \w+\/s \| ETA \S+/,
      );
      expect(file.output).toContain('pushed release v9 to fleet pumps-east');
      const piped = await ferryOnTerminal(['push', 'pumps-east', '-'], { env, stdinFile: fixtures.v2Oci });
      expect(piped.code).toBe(0);
      expect(piped.output).toMatch(/pushing to pumps-east [\d.]+ \w+ \| [\d.]+ \w+\/s/);
      expect(piped.output).not.toMatch(/ETA/);
      const fromTerminal = await ferryOnTerminal(['push', 'pumps-east', '-'], { env });
      expect(fromTerminal.code).toBe(EXIT.usage);
      expect(fromTerminal.output).toContain('stdin is a terminal; pipe an archive in');
      const json = await ferryOnTerminal(['push', 'pumps-east', fixtures.v1Docker, '--json'], { env });
      expect(json.code).toBe(0);
      expect(json.output).not.toContain('pushing to');
      expect(JSON.parse(json.output).version).toBe(11);
    });

    it('streams a large archive: memory does not grow with its size', async () => {
      // One 256 MiB member and no manifest: the server reads all of it before it answers 422.
      const dir = join(work, 'big');
      mkdirSync(dir);
      writeFileSync(join(dir, 'zeros.bin'), '');
      truncateSync(join(dir, 'zeros.bin'), 256 * 1024 * 1024);
      const big = join(work, 'big.tar');
      execFileSync('tar', ['-cf', big, '-C', dir, 'zeros.bin']);
      rmSync(dir, { recursive: true });
      const baseline = await run(['fleets'], { measureMemory: true });
      const pushed = await run(['push', 'pumps-east', big], { measureMemory: true });
      rmSync(big);
      expect(pushed.code).toBe(EXIT.refused);
      expect(pushed.stderr).toContain('422 Unprocessable Entity: missing manifest');
      expect(baseline.peakRssKb).toBeGreaterThan(0);
      expect(pushed.peakRssKb! - baseline.peakRssKb!).toBeLessThan(64 * 1024);
    });

    it('refuses a garbage archive with exit 3 and the server reason', async () => {
      const garbage = join(work, 'garbage.tar');
      writeFileSync(garbage, Buffer.alloc(300_000, 'not a tar archive '));
      const result = await run(['push', 'pumps-east', garbage]);
      expect(result.code).toBe(EXIT.refused);
      expect(result.stderr).toMatch(/^ferry push: 422 Unprocessable Entity: archive is not a readable tar/);
    });

    it('an archive that cannot be read is exit 1; an unknown fleet or a taken version is exit 3', async () => {
      const missing = await run(['push', 'pumps-east', join(work, 'nope.tar')]);
      expect(missing).toMatchObject({
        code: EXIT.usage,
        stderr: `ferry push: cannot read ${join(work, 'nope.tar')}: no such file\n`,
      });
      const folder = await run(['push', 'pumps-east', work]);
      expect(folder).toMatchObject({
        code: EXIT.usage,
        stderr: `ferry push: ${work} is a folder without a compose file (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml): push a docker save or OCI archive, or a folder holding a compose file and its archives\n`,
      });
      const fleetless = await run(['push', 'nope', fixtures.v1Docker]);
      expect(fleetless).toMatchObject({
        code: EXIT.refused,
        stderr: 'ferry push: 404 Not Found: no fleet "nope"\n',
      });
      const taken = await run(['push', 'pumps-east', fixtures.v1Docker, '--version', '7']);
      expect(taken.code).toBe(EXIT.refused);
      // Release versions only grow per fleet: 7 is below what this suite has pushed by now.
      expect(taken.stderr).toMatch(
        /^ferry push: 409 Conflict: release versions only grow: fleet pumps-east is at v\d+, push v\d+ or more\n$/,
      );
      const badVersion = await run(['push', 'pumps-east', fixtures.v1Docker, '--version', 'x']);
      expect(badVersion.code).toBe(EXIT.usage);
    });

    it('a bad FERRY_TOKEN is exit 5 on any command', async () => {
      const result = await run(['releases', 'pumps-east'], {
        env: { FERRY_TOKEN: 'wrong-token-0123456789' },
      });
      expect(result).toMatchObject({
        code: EXIT.notLoggedIn,
        stderr:
          'ferry releases: the server refused the token (401 Unauthorized: invalid token: not a working operator key)\n',
      });
    });
  });

  it('prints its version, and help with exit 1 when a command group is given no subcommand', async () => {
    const version = await run(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    for (const args of [[], ['fleet'], ['device'], ['rollout'], ['delta'], ['env']]) {
      const result = await run(args);
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      expect(result.stderr).toMatch(/^Usage: ferry/);
    }
    const releases = await run(['releases', '-f', 'pumps-east', '--json']);
    expect(releases.code).toBe(0);
    expect(releases.stdout).toBe((await run(['releases', 'pumps-east', '--json'])).stdout);
  });

  it('documents the exit codes in --help, and every command has --help', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:\n  0  success\n  1  usage or input error');
    for (const code of [2, 3, 4, 5, 6]) expect(help.stdout).toMatch(new RegExp(`^ {2}${code} {2}\\S`, 'm'));
    const commands = [
      ['login'],
      ['logout'],
      ['whoami'],
      ['fleets'],
      ['fleet'],
      ['fleet', 'create'],
      ['fleet', 'key'],
      ['fleet', 'key', 'revoke'],
      ['fleet', 'keys'],
      ['devices'],
      ['device'],
      ['device', 'rm'],
      ['device', 'tag'],
      ['device', 'purge-volume'],
      ['push'],
      ['releases'],
      ['release'],
      ['deltas'],
      ['delta'],
      ['rollout'],
      ['rollout', 'start'],
      ['rollout', 'status'],
      ['rollout', 'pause'],
      ['rollout', 'resume'],
      ['rollout', 'abort'],
      ['rollouts'],
      ['keys'],
      ['keys', 'create'],
      ['keys', 'revoke'],
      ['keys', 'disable-bootstrap'],
      ['keys', 'generate-release-key'],
      ['audit'],
    ];
    // Four at a time: 30 node processes at once on a loaded 2-core machine outran the test's time.
    const results: Awaited<ReturnType<typeof run>>[] = [];
    for (let i = 0; i < commands.length; i += 4)
      results.push(...(await Promise.all(commands.slice(i, i + 4).map((c) => run([...c, '--help'])))));
    results.forEach((r, i) => {
      expect({ command: commands[i], code: r.code }).toEqual({ command: commands[i], code: 0 });
      expect(r.stdout).toMatch(/^Usage: ferry /);
    });
  }, 300_000);
});
