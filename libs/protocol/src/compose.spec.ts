import { InvalidComposeError } from './errors';
import { durationMs, parseCompose, sizeBytes, words } from './compose';
import { effectiveEnvironment, startOrder, updateStrategyOf } from './service-config';

const allowed = { allowedBindMounts: ['/srv/data'] };

function refusal(doc: unknown, options = allowed): string {
  try {
    parseCompose(doc, options);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidComposeError);
    return (error as Error).message;
  }
  throw new Error('compose file was accepted');
}

describe('parseCompose', () => {
  it('normalises list and map forms, durations and sizes', () => {
    const { services, app } = parseCompose(
      {
        version: '3.8',
        services: {
          web: {
            image: 'web:1',
            command: 'httpd -f -p "8080"',
            environment: ['A=1', 'B=x=y'],
            ports: ['127.0.0.1:8080:80/udp', 9000, { target: 81, published: '8081' }],
            volumes: ['data:/data:ro', { type: 'bind', source: '/srv/data/web', target: '/host' }],
            depends_on: { db: { condition: 'service_healthy' } },
            healthcheck: { test: 'true', interval: '1m30s', retries: 3 },
            shm_size: '64m',
            ulimits: { nofile: { soft: 10, hard: 20 }, nproc: 5 },
            extra_hosts: { gw: '10.0.0.1' },
            labels: { 'io.ferry.update.strategy': 'hand-over' },
          },
          db: { image: 'db:1', environment: { N: 3, T: true }, networks: { back: { aliases: ['store'] } } },
        },
        volumes: { data: null },
        networks: { back: { internal: true } },
        'x-common': { anything: 1 },
      },
      allowed,
    );
    const web = services.find((s) => s.name === 'web')!.config;
    expect(web.command).toEqual(['httpd', '-f', '-p', '8080']);
    expect(web.environment).toEqual({ A: '1', B: 'x=y' });
    expect(web.ports).toEqual([
      { target: 80, published: 8080, protocol: 'udp', hostIp: '127.0.0.1' },
      { target: 9000, protocol: 'tcp' },
      { target: 81, published: 8081, protocol: 'tcp' },
    ]);
    expect(web.volumes).toEqual([
      { type: 'volume', source: 'data', target: '/data', readOnly: true },
      { type: 'bind', source: '/srv/data/web', target: '/host', readOnly: false },
    ]);
    expect(web.healthcheck).toEqual({ test: ['CMD-SHELL', 'true'], intervalMs: 90_000, retries: 3 });
    expect(web.shmSizeBytes).toBe(64 * 1024 * 1024);
    expect(web.ulimits).toEqual({ nofile: { soft: 10, hard: 20 }, nproc: { soft: 5, hard: 5 } });
    expect(web.extraHosts).toEqual(['gw:10.0.0.1']);
    expect(updateStrategyOf(web)).toBe('hand-over');
    expect(services.find((s) => s.name === 'db')!.config.environment).toEqual({ N: '3', T: 'true' });
    expect(app).toEqual({ volumes: { data: {} }, networks: { back: { internal: true } } });
    expect(startOrder(services).map((s) => s.name)).toEqual(['db', 'web']);
  });

  it.each([
    [{ services: { web: { image: 'w', build: '.' } } }, 'services.web.build: build is not supported'],
    [
      { services: { web: { image: 'w', env_file: '.env' } } },
      'services.web.env_file: env_file is not supported',
    ],
    [
      { services: { web: { image: 'w', mem_limit: '1g' } } },
      'services.web.mem_limit: unsupported key "mem_limit"',
    ],
    [{ services: { web: { image: 'w' } }, secrets: {} }, 'secrets: unsupported top-level key'],
    [
      { services: { web: { image: 'w', volumes: ['nope:/d'] } } },
      'services.web.volumes.0: volume "nope" is not declared',
    ],
    [
      { services: { web: { image: 'w', volumes: ['/etc:/etc'] } } },
      'services.web.volumes.0: bind mount of /etc is not allowed',
    ],
    [
      { services: { web: { image: 'w', volumes: ['/srv/data/../../etc:/x'] } } },
      'bind mount of /etc is not allowed',
    ],
    [{ services: { web: { image: 'w', volumes: ['/d'] } } }, 'anonymous volume'],
    [
      { services: { web: { image: 'w', environment: ['HOME'] } } },
      'services.web.environment.HOME: has no value',
    ],
    [
      { services: { web: { image: 'w', depends_on: ['db'] } } },
      'services.web.depends_on.db: no service "db"',
    ],
    [
      { services: { a: { image: 'w', depends_on: ['b'] }, b: { image: 'w', depends_on: ['a'] } } },
      'cycle (a → b → a)',
    ],
    [{ services: { web: { image: 'w', ports: ['8000-8010:8000-8010'] } } }, 'port ranges are not supported'],
    [
      { services: { web: { image: 'w', labels: { 'io.ferry.update.strategy': 'yolo' } } } },
      '"yolo" is not one of',
    ],
    [
      { services: { web: { image: 'w', network_mode: 'host', networks: ['n'] } }, networks: { n: null } },
      'cannot be combined',
    ],
    [{ services: { web: { image: 'w', restart: 'sometimes' } } }, 'services.web.restart'],
    [{ services: { 'bad name!': { image: 'w' } } }, 'services.bad name!'],
    [{ services: { web: {} } }, 'services.web.image'],
    ['not a mapping', 'compose file'],
  ])('refuses %j naming what is wrong', (doc, message) => {
    expect(refusal(doc)).toContain(message);
  });

  it('splits, measures and sizes like Compose', () => {
    expect(words(`sh -c 'echo "a b"' x\\ y`)).toEqual(['sh', '-c', 'echo "a b"', 'x y']);
    expect(durationMs('1h2m3s4ms')).toBe(3_723_004);
    expect(durationMs(2.5)).toBe(2500);
    expect(sizeBytes('1g')).toBe(1024 ** 3);
    expect(sizeBytes('512kb')).toBe(512 * 1024);
  });
});

describe('effectiveEnvironment', () => {
  it('overlays fleet < fleet+service < device < device+service on the release environment', () => {
    const variables = {
      version: 3,
      fleet: { A: 'fleet', B: 'fleet', C: 'fleet', D: 'fleet' },
      fleetServices: { web: { B: 'fleet+web', C: 'fleet+web', D: 'fleet+web' }, other: { X: 'no' } },
      device: { C: 'device', D: 'device' },
      deviceServices: { web: { D: 'device+web' } },
    };
    expect(effectiveEnvironment({ A: 'compose', E: 'compose' }, variables, 'web')).toEqual({
      A: 'fleet',
      B: 'fleet+web',
      C: 'device',
      D: 'device+web',
      E: 'compose',
    });
    expect(effectiveEnvironment(undefined, null, 'web')).toEqual({});
  });
});
