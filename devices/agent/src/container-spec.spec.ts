import type { DeviceVariables, ReleaseManifest } from '@ferry/protocol/wire';
import { CONFIG_LABEL, containerSpec } from './container-spec';
import { releaseSpecs } from './containers';

const manifest: ReleaseManifest = {
  schemaVersion: 2,
  fleetId: 'f',
  releaseId: 'r1',
  version: 1,
  createdAt: '2026-01-01T00:00:00Z',
  app: { name: 'fleet', volumes: { data: {} }, networks: { app: {} } },
  services: [
    {
      name: 'web',
      image: 'web:1',
      configDigest: `sha256:${'a'.repeat(64)}`,
      layers: [],
      config: {
        environment: { A: 'compose', B: 'compose' },
        volumes: [{ type: 'volume', source: 'data', target: '/data', readOnly: false }],
        networks: { app: { aliases: ['www'] } },
        ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
        privileged: true,
      },
    },
    { name: 'other', image: 'o:1', configDigest: `sha256:${'b'.repeat(64)}`, layers: [], config: {} },
  ],
};
const vars = (device: Record<string, string>): DeviceVariables => ({
  version: 1,
  fleet: {},
  fleetServices: {},
  device,
  deviceServices: {},
});

describe('network_mode: service:X', () => {
  const joining = (webImage: string): ReleaseManifest => ({
    ...manifest,
    services: [
      {
        name: 'side',
        image: 's:1',
        configDigest: `sha256:${'c'.repeat(64)}`,
        layers: [],
        config: { networkMode: 'service:web' },
      },
      { ...manifest.services[0]!, configDigest: webImage },
    ],
  });
  it('joins the named service (started first), and gets a new container whenever that one does', () => {
    const v1 = releaseSpecs(joining(`sha256:${'a'.repeat(64)}`), null, 'host');
    expect(v1.map((s) => s.service)).toEqual(['web', 'side']);
    expect(v1[1]!.body.HostConfig.NetworkMode).toBe('container:ferry_web');
    const v2 = releaseSpecs(joining(`sha256:${'d'.repeat(64)}`), null, 'host');
    expect(v2[1]!.hash).not.toBe(v1[1]!.hash);
    expect(v2[1]!.name).not.toBe(v1[1]!.name);
    expect(v2[1]!.body.Labels[CONFIG_LABEL]).toBe(v2[1]!.hash);
    expect(releaseSpecs(joining(`sha256:${'a'.repeat(64)}`), null, 'host')[1]!.hash).toBe(v1[1]!.hash);
  });
});

describe('containerSpec', () => {
  it('maps the service configuration to the engine create body, with the app-scoped names', () => {
    const spec = containerSpec(manifest, manifest.services[0]!, vars({ B: 'device' }), 'host');
    expect(spec.body.Env).toEqual(['A=compose', 'B=device']);
    expect(spec.body.HostConfig).toMatchObject({
      NetworkMode: 'fleet_app',
      Mounts: [{ Type: 'volume', Source: 'fleet_data', Target: '/data' }],
      PortBindings: { '80/tcp': [{ HostPort: '8080' }] },
      RestartPolicy: { Name: 'unless-stopped' },
      Privileged: true,
    });
    expect(spec.body.NetworkingConfig).toEqual({
      EndpointsConfig: { fleet_app: { Aliases: ['web', 'www'] } },
    });
    expect(spec.body.Labels[CONFIG_LABEL]).toBe(spec.hash);
    expect(spec.name).toBe(`ferry_web_${spec.hash.slice(0, 12)}`);
  });

  it('hashes image and effective configuration only: a new release or an unrelated variable changes nothing', () => {
    const web = (m: ReleaseManifest, v: DeviceVariables | null) =>
      containerSpec(m, m.services[0]!, v, 'host').hash;
    const base = web(manifest, vars({}));
    expect(web({ ...manifest, releaseId: 'r2', version: 2 }, vars({}))).toBe(base);
    expect(web(manifest, { ...vars({}), deviceServices: { other: { X: '1' } } })).toBe(base);
    expect(web(manifest, vars({ X: '1' }))).not.toBe(base);
    const otherImage = { ...manifest.services[0]!, configDigest: `sha256:${'c'.repeat(64)}` };
    expect(web({ ...manifest, services: [otherImage] }, vars({}))).not.toBe(base);
  });

  it('runs a schema-1 service with the agent network mode and engine defaults', () => {
    const v1: ReleaseManifest = { ...manifest, schemaVersion: 1, app: undefined };
    const spec = containerSpec(v1, { ...manifest.services[1]!, config: undefined }, null, 'none');
    expect(spec.body.HostConfig).toEqual({ NetworkMode: 'none', RestartPolicy: { Name: 'unless-stopped' } });
    expect(spec.body.Env).toBeUndefined();
  });
});
