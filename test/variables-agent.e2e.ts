import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Device, Release, VariableList } from '@ferry/protocol';
import { AgentProcess, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, startAgentWorld } from './support/agent-harness';

interface Inspect {
  Id: string;
  State: { Running: boolean; StartedAt: string };
  Config: { Env: string[] };
}

/**
 * Configuration variables on a real device: the bundled agent on the private Docker engine runs a
 * two-service compose app; a variable set through the API reaches the service it concerns over MQTT
 * without a new release (its container is recreated with the new environment), and the other service
 * keeps its container (same id, not restarted). The device reports the variables version it runs.
 */
describe('configuration variables reach the containers without a new release', () => {
  let world: AgentWorld;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let release: Release;

  const docker = (...args: string[]): string =>
    execFileSync('docker', ['-H', `unix://${world.engine.socket}`, ...args], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  /** An image from busybox-static whose command prints its environment and sleeps. */
  const buildImage = (dir: string, tag: string): void => {
    const ctx = join(dir, tag.replace(/[:/]/g, '-'));
    mkdirSync(ctx, { recursive: true });
    copyFileSync('/bin/busybox', join(ctx, 'busybox'));
    writeFileSync(join(ctx, 'run.sh'), `#!/bin/sh\necho "${tag} starts"\nenv\nexec sleep 3600\n`, {
      mode: 0o755,
    });
    writeFileSync(
      join(ctx, 'Dockerfile'),
      'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nCOPY run.sh /run.sh\nCMD ["/run.sh"]\n',
    );
    docker('build', '-q', '-t', tag, ctx);
  };

  /** The one running container of a service, or null while there is not exactly one (mid-swap). */
  const running = (service: string): Inspect | null => {
    const ids = docker('ps', '-q', '--filter', `label=io.ferry.service=${service}`).trim().split('\n');
    if (ids.length !== 1 || !ids[0]) return null;
    return (JSON.parse(docker('inspect', ids[0])) as Inspect[])[0] ?? null;
  };
  const inspect = (service: string): Inspect => {
    const found = running(service);
    if (!found) throw new Error(`${service}: not exactly one running container`);
    return found;
  };
  const env = (c: Inspect): Record<string, string> =>
    Object.fromEntries(c.Config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

  const set = async (owner: string, body: Record<string, unknown>): Promise<void> => {
    const res = await world.server.api(`/v1/${owner}/variables`, { method: 'POST', json: body });
    if (res.status >= 300) throw new Error(`set variable: ${res.status} ${await res.text()}`);
  };

  /** Waits until the device reports running the variables version the server holds for it. */
  const runsCurrentVariables = (): Promise<Device> =>
    until(
      'the device to report the current variables version',
      async () => {
        const device = await world.device(uuid);
        return device.variables.reportedVersion === device.variables.version ? device : undefined;
      },
      60_000,
      200,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-6000)}`);
    });

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('variables');
    const dir = join(world.work, 'images');
    buildImage(dir, 'web:1');
    buildImage(dir, 'worker:1');
    docker('save', '-o', join(dir, 'images.tar'), 'web:1', 'worker:1');
    docker('rmi', 'web:1', 'worker:1');
    release = await world.pushCompose(
      [
        'services:',
        '  web:',
        '    image: web:1',
        '  worker:',
        '    image: worker:1',
        '    environment:',
        '      SITE: from-compose',
        '',
      ].join('\n'),
      [join(dir, 'images.tar')],
      1,
    );
    // A fleet variable before the device exists: it gets it with its first containers.
    await set(`fleets/${world.fleet.slug}`, { name: 'REGION', value: 'eu-north' });
    ({ agent, uuid } = await world.startAgent(join(world.work, 'device')));
    await world.setTarget(uuid, release.id);
    await world.reported(uuid, 'running', release.id, 120_000);
    await runsCurrentVariables();
  }, 300_000);

  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('runs the release with compose environment and fleet variables', () => {
    expect(env(inspect('worker'))).toMatchObject({ SITE: 'from-compose', REGION: 'eu-north' });
    expect(env(inspect('web'))).toMatchObject({ REGION: 'eu-north' });
    expect(env(inspect('web')).SITE).toBeUndefined();
  });

  it('a device variable for the worker recreates only the worker; web keeps its container', async () => {
    const web = inspect('web');
    const worker = inspect('worker');
    await set(`devices/${uuid}`, { name: 'SITE', value: 'north-7', service: 'worker' });
    await set(`devices/${uuid}`, { name: 'API_KEY', value: 'k-123-secret', service: 'worker', secret: true });
    const changed = await until(
      'the worker to run with SITE=north-7',
      () => {
        const now = running('worker');
        return now && env(now).SITE === 'north-7' && env(now).API_KEY === 'k-123-secret' ? now : undefined;
      },
      60_000,
      250,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-6000)}`);
    });
    expect(changed.Id).not.toBe(worker.Id);
    expect(docker('logs', changed.Id)).toMatch(/^SITE=north-7$/m);
    // web: the same container, never restarted.
    const after = inspect('web');
    expect(after.Id).toBe(web.Id);
    expect(after.State.StartedAt).toBe(web.State.StartedAt);
    expect(env(after).SITE).toBeUndefined();
    const device = await runsCurrentVariables();
    expect(device.releaseId).toBe(release.id);
    // The operator still sees no secret.
    const list = (await (await world.server.api(`/v1/devices/${uuid}/variables`)).json()) as VariableList;
    expect(JSON.stringify(list)).not.toContain('k-123-secret');
  });

  it('takes variables only from the signed target: a middlebox that changes them changes nothing', async () => {
    const web = inspect('web');
    const lie = (levels: Record<string, unknown>): Record<string, unknown> => ({
      ...levels,
      version: Number(levels.version) + 100,
      fleet: { ...(levels.fleet as Record<string, string>), REGION: 'attacker' },
    });
    world.proxy.rewriteVariables = lie;
    world.proxy.rewriteTarget = (target) => ({
      ...target,
      variables: lie(target.variables as Record<string, unknown>),
    });
    try {
      await set(`fleets/${world.fleet.slug}`, { name: 'LEVEL', value: '1' });
      // The altered target is refused (its signature covers the variables): the device says why.
      await until(
        'the device to refuse the altered target',
        async () => ((await world.device(uuid)).report?.error ?? '').match(/signature/) ?? undefined,
        60_000,
        200,
      );
      expect(env(inspect('web')).REGION).toBe('eu-north');
      expect(env(inspect('web')).LEVEL).toBeUndefined();
      expect(inspect('web').Id).toBe(web.Id);
      // Only the variables answer altered: the signed target's variables win.
      world.proxy.rewriteTarget = null;
      const updated = await until('web to run with LEVEL=1', () => {
        const now = running('web');
        return now && env(now).LEVEL === '1' ? now : undefined;
      });
      expect(env(updated).REGION).toBe('eu-north');
      await runsCurrentVariables();
    } finally {
      world.proxy.rewriteVariables = null;
      world.proxy.rewriteTarget = null;
    }
  });

  it('a fleet variable for web recreates only web; deleting the device value restores the compose one', async () => {
    const worker = inspect('worker');
    await set(`fleets/${world.fleet.slug}`, { name: 'PORT', value: '8080', service: 'web' });
    const web = await until('web to run with PORT=8080', () => {
      const now = running('web');
      return now && env(now).PORT === '8080' ? now : undefined;
    });
    expect(inspect('worker').Id).toBe(worker.Id);
    await runsCurrentVariables();

    const res = await world.server.api(`/v1/devices/${uuid}/variables/SITE?service=worker`, {
      method: 'DELETE',
    });
    expect(res.status).toBe(204);
    await until('the worker back on the compose SITE', () => {
      const now = running('worker');
      return now && env(now).SITE === 'from-compose' ? true : undefined;
    });
    expect(inspect('web').Id).toBe(web.Id);
    await runsCurrentVariables();
  });
});
