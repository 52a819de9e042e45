import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { ClientRequest, request } from 'node:http';
import { AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noise } from './support/agent-images';
import { filesUnder, pushArchive } from './support/files';
import { dockerArchive, gnuTarLayer } from './support/hostile-archives';
import { ImageFixtures, buildImageFixtures } from './support/image-fixtures';
import { createFleet, eventually, TestFleet } from './support/mqtt-devices';
import { freshPostgresDatabase } from './support/postgres';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

const SERVER_MAIN = join(__dirname, '..', 'apps', 'server', 'dist', 'main.js');

/** Starts a push of `body` to `url` and sends only its first `sentBytes`; the request stays open. */
function startPush(
  url: string,
  fleet: string,
  body: Buffer,
  sentBytes: number,
): {
  req: ClientRequest;
  answer: Promise<{ status: number; text: string }>;
} {
  const req = request(`${url}/v1/fleets/${fleet}/releases`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      'content-type': 'application/x-tar',
      'content-length': String(body.length),
    },
  });
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
  });
  req.write(body.subarray(0, sentBytes));
  return { req, answer };
}

const stagingFolders = (dataDir: string): Promise<string[] | undefined> =>
  Promise.resolve(filesUnder(join(dataDir, 'tmp')).length > 0 ? filesUnder(join(dataDir, 'tmp')) : undefined);
const emptyStaging = (dataDir: string): Promise<true | undefined> =>
  Promise.resolve(filesUnder(join(dataDir, 'tmp')).length === 0 ? true : undefined);

/** A push that ends in any way (abort, stall, server kill) leaves nothing in staging for long. */
describe.each(DATABASE_KINDS)('release uploads that never finish (%s)', (kind) => {
  let work: string;
  let fixtures: ImageFixtures;
  let archive: Buffer;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ferry-uploads-'));
    fixtures = buildImageFixtures(join(work, 'fixtures'));
    archive = readFileSync(fixtures.v1Docker);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  describe('on a running server', () => {
    let server: TestServer;
    let fleet: TestFleet;
    beforeAll(async () => {
      server = await startTestServer(kind, { FERRY_UPLOAD_IDLE_SECONDS: '1' });
      fleet = await createFleet(server, 'Uploads');
    });
    afterAll(() => server.close());

    it('removes the staging folder as soon as the client aborts mid-upload', async () => {
      const { req, answer } = startPush(server.url, fleet.slug, archive, 1_500_000);
      answer.catch(() => undefined);
      await eventually(() => stagingFolders(server.dataDir), 5000, 'a member being staged');
      req.destroy();
      await eventually(() => emptyStaging(server.dataDir), 5000, 'staging removed after the abort');
    });

    it('answers 408 to an upload that stalls past FERRY_UPLOAD_IDLE_SECONDS and removes its staging', async () => {
      const { req, answer } = startPush(server.url, fleet.slug, archive, 1_500_000);
      try {
        const { status, text } = await answer;
        expect(status).toBe(408);
        expect(text).toMatch(/the upload stalled: no data for 1 s \(FERRY_UPLOAD_IDLE_SECONDS\)/);
        await eventually(() => emptyStaging(server.dataDir), 5000, 'staging removed after the 408');
      } finally {
        req.destroy();
      }
    });
  });

  it('sweeps the staging folder of a server killed mid-upload, once restarted, within FERRY_STAGING_STALE_SECONDS', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ferry-killed-'));
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    // On PostgreSQL the killed server and the restarted one share a database, as they share DATA_DIR.
    const postgres = kind === 'postgres' ? await freshPostgresDatabase() : null;
    const env = {
      DATA_DIR: dataDir,
      FERRY_ADMIN_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: 'silent',
      ...(postgres ? { DATABASE_URL: postgres.url } : {}),
    };
    const child = spawn(process.execPath, [SERVER_MAIN], {
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', MQTT_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let restarted: TestServer | undefined;
    try {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await eventually(
        async () => (output.includes('listening') ? true : undefined),
        60_000,
        `server start:\n${output}`,
      );
      const url = `http://127.0.0.1:${port}`;
      const created = await fetch(`${url}/v1/fleets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Killed', arch: 'amd64' }),
      });
      const { slug } = (await created.json()) as { slug: string };
      const { req, answer } = startPush(url, slug, archive, 1_500_000);
      answer.catch(() => undefined);
      await eventually(() => stagingFolders(dataDir), 5000, 'a member being staged');
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      req.destroy();
      expect(filesUnder(join(dataDir, 'tmp')).length).toBeGreaterThan(0);
      restarted = await startTestServer(kind, { ...env, FERRY_STAGING_STALE_SECONDS: '10' });
      await eventually(() => emptyStaging(dataDir), 25_000, 'the dead upload swept');
    } finally {
      child.kill('SIGKILL');
      await restarted?.close();
      await postgres?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  describe('on a full disk (DATA_DIR on a 6 MiB tmpfs)', () => {
    let server: TestServer;
    let fleet: TestFleet;
    let dataDir: string;
    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'ferry-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dataDir]);
      server = await startTestServer(kind, { DATA_DIR: dataDir });
      fleet = await createFleet(server, 'Full');
    });
    afterAll(async () => {
      await server.close();
      execFileSync('umount', [dataDir]);
      rmSync(dataDir, { recursive: true, force: true });
    });

    /** This process's open descriptors on the tmpfs, besides the database's own files. */
    const openOnTmpfs = (): string[] =>
      readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`);
          } catch {
            return '';
          }
        })
        .filter(
          (target) => target.startsWith(dataDir) && !/ferry\.sqlite(-wal|-shm|-journal)?$/.test(target),
        );

    it.each([
      ['while its members are written', 8 * 1024 * 1024],
      ['while a layer is staged (its gzip copy)', 3 * 1024 * 1024],
    ])('answers 507 "disk is full" %s, closes every descriptor and keeps nothing', async (_when, size) => {
      const layer = gnuTarLayer(join(work, `full-${size}`), {
        'app/data.bin': noise(size, size).toString('latin1'),
      });
      const body = await dockerArchive([layer]);
      const response = await pushArchive(server.url, fleet.slug, ADMIN_TOKEN, body);
      expect(response.status).toBe(507);
      expect(((await response.json()) as { message: string }).message).toMatch(
        /the server's disk is full \(ENOSPC\)/,
      );
      expect(openOnTmpfs()).toEqual([]);
      expect(filesUnder(join(dataDir, 'tmp'))).toEqual([]);
      expect(filesUnder(join(dataDir, 'blobs'))).toEqual([]);
    });
  });
});
