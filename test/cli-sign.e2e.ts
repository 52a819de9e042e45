import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet, Release } from '@ferry/protocol';
import { buildCli, ferry, type FerryRun } from './support/cli';
import { ImageFixtures, buildImageFixtures } from './support/image-fixtures';
import { ADMIN_TOKEN, TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

/**
 * A loopback proxy in front of the server that plays a server lying about what it received: the
 * manifest in its answer to a push is rewritten by `lie` (the release stored is the real one).
 */
async function lyingServer(
  upstream: string,
  lie: (release: Release) => void,
): Promise<{ url: string; close: () => Promise<void> }> {
  const target = new URL(upstream);
  const server: Server = createServer((req, res) => {
    const pushing = req.method === 'POST' && /^\/v1\/fleets\/[^/]+\/releases/.test(req.url ?? '');
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (!pushing || answer.statusCode !== 201) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const release = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Release;
          lie(release);
          const body = Buffer.from(JSON.stringify(release));
          res.writeHead(201, { 'content-type': 'application/json', 'content-length': String(body.length) });
          res.end(body);
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `ferry push --sign` signs only a manifest that lists exactly the images and layers it pushed. */
describe.each(DATABASE_KINDS)('ferry push --sign (%s)', (kind) => {
  let server: TestServer;
  let fixtures: ImageFixtures;
  let work: string;
  let fleet: Fleet;
  const run = (args: string[], url = server.url): Promise<FerryRun> =>
    ferry(args, {
      env: { FERRY_URL: url, FERRY_TOKEN: ADMIN_TOKEN, FERRY_CONFIG: join(work, 'config.json') },
    });
  const stored = async (version: number): Promise<Release> => {
    const list = (await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).json()) as Release[];
    const release = list.find((r) => r.version === version);
    if (!release) throw new Error(`no v${version}`);
    return (await (await server.api(`/v1/releases/${release.id}`)).json()) as Release;
  };

  const nextVersion = async (): Promise<number> =>
    Math.max(
      0,
      ...((await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).json()) as Release[]).map(
        (r) => r.version,
      ),
    ) + 1;
  /**
   * Pushes v2 with --sign through a server that rewrites the manifest of its answer by `lie`: the CLI
   * must refuse with `message`, and the release (stored for real) must have no owner signature.
   */
  const pushSignedThroughLiar = async (
    lie: (release: Release) => void,
    message: RegExp,
    extra: string[],
  ): Promise<void> => {
    const liar = await lyingServer(server.url, lie);
    try {
      const version = await nextVersion();
      const result = await run(
        [
          'push',
          fleet.slug,
          fixtures.v2Docker,
          ...extra,
          '--sign',
          join(work, 'owner.key'),
          '--version',
          String(version),
        ],
        liar.url,
      );
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(message);
      // Pushed (the server has it), never signed: it cannot reach a device.
      expect((await stored(version)).ownerSignatures ?? []).toEqual([]);
    } finally {
      await liar.close();
    }
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-cli-sign-'));
    fixtures = buildImageFixtures(join(work, 'fixtures'));
    [server] = await Promise.all([startTestServer(kind), buildCli()]);
    const key = join(work, 'owner.key');
    expect((await run(['keys', 'generate-release-key', '--out', key])).code).toBe(0);
    const created = await run([
      'fleet',
      'create',
      'signed',
      '--arch',
      'amd64',
      '--release-key',
      `${key}.pub`,
      '--json',
    ]);
    expect(created.code).toBe(0);
    fleet = JSON.parse(created.stdout) as Fleet;
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('signs a manifest that lists the layers of the archive it pushed', async () => {
    const result = await run([
      'push',
      fleet.slug,
      fixtures.v1Docker,
      '--sign',
      join(work, 'owner.key'),
      '--version',
      '1',
    ]);
    expect(result.code).toBe(0);
    expect((await stored(1)).ownerSignatures).toHaveLength(1);
  }, 120_000);

  it.each([
    [
      'a layer swapped for another',
      (r: Release) => (r.manifest.services[0]!.layers[1]!.diffId = `sha256:${'e'.repeat(64)}`),
      /the server's manifest lists layers .* the archive you pushed has .*: not signing it/,
    ],
    [
      'a layer added',
      (r: Release) => r.manifest.services[0]!.layers.push({ ...r.manifest.services[0]!.layers[0]! }),
      /the server's manifest lists layers/,
    ],
    [
      'a layer left out',
      (r: Release) => r.manifest.services[0]!.layers.pop(),
      /the server's manifest lists layers/,
    ],
    [
      'another image',
      (r: Release) => (r.manifest.services[0]!.configDigest = `sha256:${'f'.repeat(64)}`),
      /which is not in the archive you pushed: not signing it/,
    ],
  ])(
    'refuses to sign when the server answers with %s, and sends no signature',
    (_what, lie, message) => pushSignedThroughLiar(lie, message, []),
    120_000,
  );

  describe('with a compose file', () => {
    const composeFile = (): string => {
      const file = join(work, 'docker-compose.yml');
      writeFileSync(
        file,
        [
          'services:',
          '  app:',
          '    image: app:2',
          '    environment: { MODE: production }',
          '    volumes: ["data:/data"]',
          'volumes:',
          '  data: {}',
          '',
        ].join('\n'),
      );
      return file;
    };
    it('signs a manifest that holds the configuration of the compose file', async () => {
      const version = await nextVersion();
      const result = await run([
        'push',
        fleet.slug,
        fixtures.v2Docker,
        '--compose',
        composeFile(),
        '--sign',
        join(work, 'owner.key'),
        '--version',
        String(version),
      ]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const release = await stored(version);
      expect(release.ownerSignatures).toHaveLength(1);
      expect(release.manifest.services[0]!.config?.environment).toEqual({ MODE: 'production' });
    }, 120_000);

    it.each([
      [
        'the service made privileged',
        (r: Release) => Object.assign(r.manifest.services[0]!.config!, { privileged: true }),
        /another configuration than your push \(privileged differs\): not signing it/,
      ],
      [
        'an environment value changed',
        (r: Release) => (r.manifest.services[0]!.config!.environment = { MODE: 'debug' }),
        /another configuration than your push \(environment differs\)/,
      ],
      [
        'a volume added to the app',
        (r: Release) => (r.manifest.app!.volumes = { ...r.manifest.app!.volumes, host: {} }),
        /the app other volumes than your push/,
      ],
      [
        'the service renamed',
        (r: Release) => (r.manifest.services[0]!.name = 'other'),
        /a service other your push does not define/,
      ],
    ])(
      'refuses to sign when the server answers with %s',
      (_what, lie, message) => pushSignedThroughLiar(lie, message, ['--compose', composeFile()]),
      120_000,
    );
  });

  it('rotates the release keys, signed here by the current key; a wrong key changes nothing', async () => {
    const next = join(work, 'next.key');
    expect((await run(['keys', 'generate-release-key', '--out', next])).code).toBe(0);
    const trustNow = async (): Promise<Fleet['releaseTrust']> =>
      ((await (await server.api(`/v1/fleets/${fleet.slug}`)).json()) as Fleet).releaseTrust;
    const rotate = (signingKey: string, ...extra: string[]): Promise<FerryRun> =>
      run([
        'keys',
        'rotate-release-keys',
        fleet.slug,
        '--key',
        `${next}.pub`,
        '--sign',
        signingKey,
        ...extra,
      ]);
    const push = (signingKey: string, version: number): Promise<FerryRun> =>
      run(['push', fleet.slug, fixtures.v1Docker, '--sign', signingKey, '--version', String(version)]);
    const before = await trustNow();
    // Signed by the new key alone: not the fleet's current key, refused here before anything is sent.
    const wrong = await rotate(next);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/sign with 1 of the fleet's current release keys/);
    const missing = await rotate(join(work, 'nope.key'));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read .*nope\.key/);
    expect(await trustNow()).toEqual(before);
    const rotated = await rotate(join(work, 'owner.key'), '--json');
    expect(rotated.stderr).toBe('');
    expect(rotated.code).toBe(0);
    const trust = (JSON.parse(rotated.stdout) as Fleet).releaseTrust;
    expect(trust).toEqual({
      version: before!.version + 1,
      keys: [readFileSync(`${next}.pub`, 'utf8')],
      threshold: 1,
    });
    // The old key signs no more; the new one does.
    const version = await nextVersion();
    expect((await push(join(work, 'owner.key'), version)).code).not.toBe(0);
    expect((await push(next, version + 1)).code).toBe(0);
    expect((await stored(version + 1)).ownerSignatures).toHaveLength(1);
  }, 120_000);

  it('lists and rotates the online key that signs device targets', async () => {
    const rotated = await run(['keys', 'rotate-online-key', '--json']);
    expect(rotated.code).toBe(0);
    const created = JSON.parse(rotated.stdout) as { seq: number; role: string };
    expect(created.role).toBe('current');
    const listed = await run(['keys', 'online', '--json']);
    const keys = JSON.parse(listed.stdout) as { seq: number; role: string }[];
    expect(keys.find((k) => k.seq === created.seq)?.role).toBe('current');
    expect(keys.find((k) => k.seq === created.seq - 1)?.role).toBe('previous');
    const text = await run(['keys', 'online']);
    expect(text.stdout).toMatch(/SEQ\s+KEY ID\s+ROLE\s+CREATED/);
  }, 60_000);

  it('refuses --sign with an archive on stdin before sending anything', async () => {
    const before = ((await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).json()) as Release[])
      .length;
    const result = await ferry(['push', fleet.slug, '-', '--sign', join(work, 'owner.key')], {
      env: { FERRY_URL: server.url, FERRY_TOKEN: ADMIN_TOKEN, FERRY_CONFIG: join(work, 'config.json') },
      stdin: (await import('node:fs')).createReadStream(fixtures.v1Docker),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--sign needs the archive as a file/);
    expect(((await (await server.api(`/v1/fleets/${fleet.slug}/releases`)).json()) as Release[]).length).toBe(
      before,
    );
    expect(readFileSync(`${join(work, 'owner.key')}.pub`, 'utf8')).toContain('PUBLIC KEY');
  }, 60_000);
});
