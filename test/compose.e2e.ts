import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { Device, Release } from '@ferry/protocol';
import { AgentProcess, agentState, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, startAgentWorld } from './support/agent-harness';
import { ADMIN_TOKEN } from './support/test-server';
import { buildCli, ferry } from './support/cli';

/** A free TCP port on the loopback address, for a published port. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

interface Inspect {
  Id: string;
  Name: string;
  RestartCount: number;
  State: { Running: boolean; Health?: { Status: string } };
  Config: {
    Env: string[];
    Cmd: string[] | null;
    Entrypoint: string[] | null;
    Labels: Record<string, string>;
    User: string;
    WorkingDir: string;
    StopSignal?: string;
    StopTimeout?: number;
    Hostname: string;
    ExposedPorts?: Record<string, object>;
    Healthcheck?: { Test: string[]; Interval?: number; Retries?: number };
  };
  HostConfig: Record<string, unknown> & {
    Devices: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[] | null;
    CapAdd: string[] | null;
    CapDrop: string[] | null;
    PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null;
    Mounts?: { Type: string; Source: string; Target: string; ReadOnly?: boolean }[];
  };
  NetworkSettings: { Networks: Record<string, { Aliases: string[] | null }> };
}

/**
 * Compose releases end to end on the private Docker engine: a two-service app (an HTTP server with a
 * published port and a named volume; a worker that depends on it being healthy) pushed with the CLI,
 * run by the bundled agent, updated service by service, rolled back; a release with every supported
 * key checked with `docker inspect`; refusals of what Ferry cannot run.
 */
describe('compose releases: push → manifest → agent → engine', () => {
  let world: AgentWorld;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let dataDir: string;
  let dirs: string;
  let port: number;
  let bindDir: string;
  const releases: Release[] = [];
  let cliEnv: Record<string, string>;

  const docker = (...args: string[]): string =>
    execFileSync('docker', ['-H', `unix://${world.engine.socket}`, ...args], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  /** Builds an image from busybox-static with a script as its command, with `docker build`. */
  const buildImage = (tag: string, script: string, extra = ''): void => {
    const ctx = join(dirs, `ctx-${tag.replace(/[:/]/g, '-')}`);
    mkdirSync(ctx, { recursive: true });
    copyFileSync('/bin/busybox', join(ctx, 'busybox'));
    writeFileSync(join(ctx, 'run.sh'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    writeFileSync(
      join(ctx, 'Dockerfile'),
      `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY run.sh /run.sh\n${extra}CMD ["/run.sh"]\n`,
    );
    docker('build', '-q', '-t', tag, ctx);
  };

  /** A release directory: the compose file and one `docker save` archive of `tags`. */
  const releaseDir = (name: string, compose: string, tags: string[]): string => {
    const dir = join(dirs, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'docker-compose.yml'), compose);
    docker('save', '-o', join(dir, 'images.tar'), ...tags);
    return dir;
  };

  const push = async (dir: string): Promise<Release> => {
    const result = await ferry(['push', world.fleet.slug, dir, '--json'], {
      env: cliEnv,
      timeoutMs: 120_000,
    });
    if (result.code !== 0) throw new Error(`push ${dir}: ${result.code} ${result.stderr}`);
    return JSON.parse(result.stdout) as Release;
  };

  const inspect = (service: string): Inspect => {
    const ids = docker('ps', '-q', '--filter', `label=io.ferry.service=${service}`).trim().split('\n');
    if (ids.length !== 1 || !ids[0]) throw new Error(`${service}: ${ids.length} running containers`);
    return (JSON.parse(docker('inspect', ids[0])) as Inspect[])[0] as Inspect;
  };

  const reported = (status: string, releaseId: string): Promise<Device> =>
    world.reported(uuid, status, releaseId, 120_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-8000)}`);
    });

  const appCompose = (worker: string, extra = ''): string => `
services:
  web:
    image: web:1
    ports: ["127.0.0.1:${port}:80"]
    volumes: ["data:/data"]
    networks: [app]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/ready"]
      interval: 1s
      retries: 30
    devices: ["/dev/zero:/dev/ferryzero:r"]
    cap_add: [NET_ADMIN]
  worker:
    image: ${worker}
    environment:
      SITE: from-compose
    volumes: ["data:/data"]
    networks: [app]
    depends_on:
      web:
        condition: service_healthy
${extra}
volumes:
  data:
networks:
  app:
`;

  beforeAll(async () => {
    buildAgentBundle();
    await buildCli();
    world = await startAgentWorld('compose');
    dirs = join(world.work, 'releases');
    dataDir = join(world.work, 'device');
    bindDir = join(world.work, 'bind');
    mkdirSync(bindDir, { recursive: true });
    writeFileSync(join(bindDir, 'hello'), 'from the host\n');
    port = await freePort();
    cliEnv = { FERRY_URL: world.server.url, FERRY_TOKEN: ADMIN_TOKEN };
    // web: serves /data over HTTP; writes the first start's mark into the volume once.
    buildImage(
      'web:1',
      '[ -f /data/first ] || echo "written by v1" > /data/first\ntouch /data/ready\nexec httpd -f -p 80 -h /data',
    );
    // worker: writes the SITE it sees into the shared volume, so the web service shows it.
    buildImage('worker:1', 'echo "worker 1 SITE=$SITE" > /data/worker\nexec sleep 3600');
    buildImage('worker:2', 'echo "worker 2 SITE=$SITE" > /data/worker\nexec sleep 3600');
    buildImage(
      'worker:3',
      'echo "worker 3 SITE=$SITE" > /data/worker\nexec sleep 3600',
      'HEALTHCHECK --interval=1s --retries=2 CMD ["false"]\n',
    );
    releaseDir('v1', appCompose('worker:1'), ['web:1', 'worker:1']);
    releaseDir('v2', appCompose('worker:2'), ['web:1', 'worker:2']);
    releaseDir('v3', appCompose('worker:3'), ['web:1', 'worker:3']);
    // The device must get everything from the server, not from the build.
    docker('rmi', 'web:1', 'worker:1', 'worker:2', 'worker:3');
  }, 300_000);

  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('refuses what it cannot run with a 422 naming the service and key, and keeps nothing', async () => {
    const bad = async (name: string, compose: string, tags = ['web:1']): Promise<string> => {
      const dir = join(dirs, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'docker-compose.yml'), compose);
      copyFileSync(join(dirs, 'v1', 'images.tar'), join(dir, 'images.tar'));
      void tags;
      const result = await ferry(['push', world.fleet.slug, dir], { env: cliEnv });
      expect(result.code).not.toBe(0);
      return result.stderr;
    };
    expect(
      await bad('bad-key', 'services:\n  web: {image: web:1, mem_limit: 1g}\n  worker: {image: worker:1}\n'),
    ).toMatch(/422.*services\.web\.mem_limit: unsupported key "mem_limit"/s);
    expect(
      await bad(
        'bad-envfile',
        'services:\n  web: {image: web:1, env_file: .env}\n  worker: {image: worker:1}\n',
      ),
    ).toContain('services.web.env_file: env_file is not supported');
    expect(await bad('bad-image', 'services:\n  web: {image: web:1}\n  worker: {image: nope:1}\n')).toContain(
      'services.worker.image: no image "nope:1"',
    );
    expect(await bad('unused-image', 'services:\n  web: {image: web:1}\n')).toContain(
      'image worker:1 is in the archives but no service uses it',
    );
    expect(
      await bad(
        'bad-bind',
        `services:\n  web: {image: web:1, volumes: ["${bindDir}:/host"]}\n  worker: {image: worker:1}\n`,
      ),
    ).toContain(`services.web.volumes.0: bind mount of ${bindDir} is not allowed`);
    expect(await bad('bad-yaml', 'services: [\n')).toContain('compose file is not valid YAML');
    const list = (await (
      await world.server.api(`/v1/fleets/${world.fleet.slug}/releases`)
    ).json()) as Release[];
    expect(list).toHaveLength(0);
  }, 120_000);

  it('runs v1: published port, named volume, depends_on service_healthy, devices and cap_add as docker inspect shows', async () => {
    releases[1] = await push(join(dirs, 'v1'));
    expect(releases[1].manifest.schemaVersion).toBe(2);
    expect(releases[1].manifest.services.map((s) => s.name).sort()).toEqual(['web', 'worker']);
    expect(releases[1].manifest.services.find((s) => s.name === 'worker')?.config?.dependsOn).toEqual({
      web: { condition: 'service_healthy' },
    });
    ({ agent, uuid } = await world.startAgent(dataDir));
    await world.setTarget(uuid, releases[1].id);
    const device = await reported('running', releases[1].id);
    const web = inspect('web');
    expect(web.HostConfig.Devices).toEqual([
      { PathOnHost: '/dev/zero', PathInContainer: '/dev/ferryzero', CgroupPermissions: 'r' },
    ]);
    expect(web.HostConfig.CapAdd).toEqual(['NET_ADMIN']);
    expect(web.HostConfig.PortBindings).toEqual({
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }],
    });
    expect(web.HostConfig.Mounts).toEqual([
      { Type: 'volume', Source: `${world.fleet.slug}_data`, Target: '/data' },
    ]);
    expect(Object.keys(web.NetworkSettings.Networks)).toEqual([`${world.fleet.slug}_app`]);
    expect((await httpGet(port, '/first')).body).toBe('written by v1\n');
    expect((await httpGet(port, '/worker')).body).toBe('worker 1 SITE=from-compose\n');
    // The worker started only once web was healthy.
    const worker = inspect('worker');
    const started = (id: string): number =>
      Date.parse((JSON.parse(docker('inspect', '-f', '{{json .State.StartedAt}}', id)) as string) ?? '');
    expect(started(worker.Id)).toBeGreaterThan(started(web.Id));
    // Per-service states reach the server.
    const withServices = await until('service states', async () => {
      const d = await world.device(uuid);
      return d.services?.length === 2 ? d : undefined;
    });
    expect(withServices.services?.map((s) => [s.name, s.state, s.health ?? null])).toEqual([
      ['web', 'running', 'healthy'],
      ['worker', 'running', null],
    ]);
    expect(device.status).toBe('running');
    const volumes = docker('volume', 'ls', '-q', '--filter', 'label=io.ferry.app').trim().split('\n');
    expect(volumes).toEqual([`${world.fleet.slug}_data`]);
  }, 240_000);

  it('v2 changes only the worker: web keeps its container (no restart), the volume keeps its data', async () => {
    const webBefore = inspect('web');
    releases[2] = await push(join(dirs, 'v2'));
    await world.setTarget(uuid, releases[2].id);
    await reported('running', releases[2].id);
    const webAfter = inspect('web');
    expect(webAfter.Id).toBe(webBefore.Id);
    expect(webAfter.RestartCount).toBe(0);
    expect(JSON.parse(docker('inspect', '-f', '{{json .State.StartedAt}}', webAfter.Id))).toBe(
      JSON.parse(docker('inspect', '-f', '{{json .State.StartedAt}}', webBefore.Id)),
    );
    expect((await httpGet(port, '/first')).body).toBe('written by v1\n');
    expect((await httpGet(port, '/worker')).body).toBe('worker 2 SITE=from-compose\n');
    expect(inspect('worker').Config.Labels['io.ferry.release']).toBe(releases[2].id);
  }, 240_000);

  it('v3 whose worker fails its health check rolls back to the v2 worker with its old configuration', async () => {
    const before = inspect('worker');
    releases[3] = await push(join(dirs, 'v3'));
    await world.setTarget(uuid, releases[3].id);
    const device = await reported('rolled_back', releases[3].id);
    expect(device.report?.error).toMatch(/unhealthy|keeps exiting/);
    const after = inspect('worker');
    expect(after.Id).toBe(before.Id);
    expect(after.Config.Env).toEqual(before.Config.Env);
    expect(after.Config.Labels['io.ferry.release']).toBe(releases[2]!.id);
    expect(agentState(dataDir).journal?.current?.releaseId).toBe(releases[2]!.id);
    expect((await httpGet(port, '/first')).body).toBe('written by v1\n');
    const managed = await world.engine.managed();
    expect(managed.map((c) => c.State).sort()).toEqual(['running', 'running']);
  }, 240_000);

  it('a compose file with every supported key round-trips push → manifest → agent → docker inspect', async () => {
    const put = await world.server.api(`/v1/fleets/${world.fleet.slug}/bind-mounts`, {
      method: 'PUT',
      json: { paths: [bindDir] },
    });
    expect(put.status).toBe(200);
    const compose = `
x-common: &common
  restart: on-failure:3
services:
  web:
    image: web:1
    ports: ["127.0.0.1:${port}:80"]
    volumes: ["data:/data"]
    networks: [app]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/ready"]
      interval: 1s
      retries: 30
    devices: ["/dev/zero:/dev/ferryzero:r"]
    cap_add: [NET_ADMIN]
  worker:
    image: worker:2
    environment: { SITE: from-compose }
    volumes: ["data:/data"]
    networks: [app]
    depends_on: { web: { condition: service_healthy } }
  full:
    <<: *common
    image: worker:2
    entrypoint: /bin/sh -c
    command: ["echo full > /tmp/full; exec sleep 3600"]
    environment: [A=1, "B=two words"]
    expose: ["9000", 9001/udp]
    ports: [{ target: 9002, protocol: udp, host_ip: 127.0.0.1 }]
    volumes:
      - data:/data:ro
      - { type: bind, source: ${bindDir}, target: /host, read_only: true }
    tmpfs: ["/tmp:size=1m", /run]
    devices: ["/dev/null:/dev/ferrynull"]
    # privileged: true cannot start in this test sandbox (runc may not raise caps past its bounding set);
    # container-spec.spec.ts checks that it maps to HostConfig.Privileged.
    privileged: false
    cap_add: [SYS_TIME]
    cap_drop: [MKNOD]
    networks: { app: { aliases: [everything] } }
    labels: { com.example.role: full, io.ferry.update.strategy: hand-over, io.ferry.update.handover-timeout: "5000" }
    depends_on: [web]
    healthcheck: { test: "true", interval: 2s, timeout: 1s, retries: 2, start_period: 1s }
    user: "0:0"
    working_dir: /data
    stop_signal: SIGINT
    stop_grace_period: 3s
    ulimits: { nofile: { soft: 1000, hard: 2000 }, nproc: 500 }
    sysctls: { net.core.somaxconn: "1024" }
    shm_size: 32m
    read_only: true
    init: true
    hostname: everything
    extra_hosts: ["gateway.local:10.0.0.1"]
    security_opt: ["no-new-privileges:true"]
  quiet:
    image: worker:2
    network_mode: none
    command: ["sh", "-c", "exec sleep 3600"]
volumes:
  data:
networks:
  app: { internal: false, labels: { com.example.net: app } }
`;
    const dir = join(dirs, 'v4');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'docker-compose.yml'), compose);
    copyFileSync(join(dirs, 'v2', 'images.tar'), join(dir, 'images.tar'));
    releases[4] = await push(dir);
    const full = releases[4].manifest.services.find((s) => s.name === 'full')?.config;
    expect(full?.restart).toBe('on-failure:3');
    expect(full?.stopGracePeriodMs).toBe(3000);
    await world.setTarget(uuid, releases[4].id);
    await reported('running', releases[4].id);
    const f = inspect('full');
    const h = f.HostConfig;
    expect(f.Config.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(f.Config.Cmd).toEqual(['echo full > /tmp/full; exec sleep 3600']);
    expect(f.Config.Env).toEqual(expect.arrayContaining(['A=1', 'B=two words']));
    expect(Object.keys(f.Config.ExposedPorts ?? {}).sort()).toEqual(['9000/tcp', '9001/udp', '9002/udp']);
    expect(h.PortBindings).toEqual({ '9002/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] });
    expect(h.Mounts).toEqual([
      { Type: 'volume', Source: `${world.fleet.slug}_data`, Target: '/data', ReadOnly: true },
      { Type: 'bind', Source: bindDir, Target: '/host', ReadOnly: true },
    ]);
    expect(h.Tmpfs).toEqual({ '/tmp': 'size=1m', '/run': '' });
    expect(h.Devices).toEqual([
      { PathOnHost: '/dev/null', PathInContainer: '/dev/ferrynull', CgroupPermissions: 'rwm' },
    ]);
    expect(h.Privileged).toBe(false);
    expect(h.CapAdd).toEqual(['SYS_TIME']);
    expect(h.CapDrop).toEqual(['MKNOD']);
    expect(f.NetworkSettings.Networks[`${world.fleet.slug}_app`]?.Aliases).toEqual(
      expect.arrayContaining(['full', 'everything']),
    );
    expect(h.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 3 });
    expect(f.Config.Labels).toMatchObject({
      'com.example.role': 'full',
      'io.ferry.update.strategy': 'hand-over',
    });
    expect(f.Config.Healthcheck).toEqual({
      Test: ['CMD-SHELL', 'true'],
      Interval: 2e9,
      Timeout: 1e9,
      Retries: 2,
      StartPeriod: 1e9,
    });
    expect(f.State.Health?.Status).toBe('healthy');
    expect(f.Config.User).toBe('0:0');
    expect(f.Config.WorkingDir).toBe('/data');
    expect(f.Config.StopSignal).toBe('SIGINT');
    expect(f.Config.StopTimeout).toBe(3);
    expect(h.Ulimits).toEqual([
      { Name: 'nofile', Soft: 1000, Hard: 2000 },
      { Name: 'nproc', Soft: 500, Hard: 500 },
    ]);
    expect(h.Sysctls).toEqual({ 'net.core.somaxconn': '1024' });
    expect(h.ShmSize).toBe(32 * 1024 * 1024);
    expect(h.ReadonlyRootfs).toBe(true);
    expect(h.Init).toBe(true);
    expect(f.Config.Hostname).toBe('everything');
    expect(h.ExtraHosts).toEqual(['gateway.local:10.0.0.1']);
    expect(h.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(docker('exec', f.Id, 'cat', '/host/hello')).toBe('from the host\n');
    expect(docker('exec', f.Id, 'cat', '/tmp/full')).toBe('full\n');
    expect(inspect('quiet').HostConfig.NetworkMode).toBe('none');
    // web and worker were untouched by this release: the same configuration hash.
    expect(inspect('web').Config.Labels['io.ferry.release']).toBe(releases[1]!.id);
  }, 240_000);

  it('keeps a volume a release stops declaring until ferry device purge-volume removes it, and nothing else', async () => {
    // v5 mounts the volume "cache" where v1..v4 mounted "data": the update keeps "data" and its data.
    const dir = join(dirs, 'v5');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'docker-compose.yml'), appCompose('worker:2').replaceAll('data:', 'cache:'));
    copyFileSync(join(dirs, 'v2', 'images.tar'), join(dir, 'images.tar'));
    releases[5] = await push(dir);
    await world.setTarget(uuid, releases[5].id);
    await reported('running', releases[5].id);
    const slug = world.fleet.slug;
    const volumes = (): string[] => docker('volume', 'ls', '-q').trim().split('\n').sort();
    const mountpoint = (name: string): string =>
      (JSON.parse(docker('volume', 'inspect', name)) as { Mountpoint: string }[])[0]!.Mountpoint;
    expect(volumes()).toEqual([`${slug}_cache`, `${slug}_data`]);
    expect(readFileSync(join(mountpoint(`${slug}_data`), 'first'), 'utf8')).toBe('written by v1\n');
    // Decoys: another app's "data", an unlabelled volume with this app's name, one a container holds.
    docker(
      'volume',
      'create',
      '--label',
      'io.ferry.app=other',
      '--label',
      'io.ferry.volume=data',
      'other_data',
    );
    docker('volume', 'create', `${slug}_junk`);
    docker(
      'volume',
      'create',
      '--label',
      `io.ferry.app=${slug}`,
      '--label',
      'io.ferry.volume=busy',
      `${slug}_busy`,
    );
    const holder = docker('create', '-v', `${slug}_busy:/x`, releases[5].services[0]!.configDigest).trim();
    const purge = (volume: string, ...extra: string[]) =>
      ferry(['device', 'purge-volume', uuid.slice(0, 8), volume, ...extra], {
        env: cliEnv,
        timeoutMs: 180_000,
      });

    const declared = await purge('cache', '--yes');
    expect(declared.code).toBe(3);
    expect(declared.stderr).toContain(`volume "cache" is declared by release v${releases[5].version}`);
    const badWait = await purge('data', '--yes', '--wait', 'soon');
    expect([badWait.code, badWait.stderr]).toEqual([
      1,
      expect.stringContaining('--wait takes whole seconds up to 86400, not "soon"'),
    ]);
    const unconfirmed = await purge('data');
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toMatch(/pass --yes/);
    expect(volumes()).toContain(`${slug}_data`);

    const purged = await purge('data', '--yes', '--wait', '120', '--json');
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout)).toMatchObject({ uuid, volume: 'data', state: 'purged', error: null });
    const junk = await purge('junk', '--yes', '--wait', '120');
    expect([junk.code, junk.stdout]).toEqual([0, `volume junk purged from device ${uuid}\n`]);
    const busy = await purge('busy', '--yes', '--wait', '120');
    expect(busy.code).toBe(3);
    expect(busy.stderr).toMatch(new RegExp(`device ${uuid} refused to purge volume busy: .*in use`));
    // Only this app's labelled, unused "data" went; the running release and its volume are untouched.
    expect(volumes()).toEqual(['other_data', `${slug}_busy`, `${slug}_cache`, `${slug}_junk`].sort());
    docker('rm', holder);
    expect((await world.device(uuid)).report?.releaseId).toBe(releases[5].id);
  }, 300_000);
});
