import { createHash } from 'node:crypto';
import { canonicalJson, effectiveEnvironment } from '@ferry/protocol/wire';
import type { DeviceVariables, ReleaseManifest, ReleaseService, ServiceConfig } from '@ferry/protocol/wire';
import type { CreateContainerBody } from './engine';

export const SERVICE_LABEL = 'io.ferry.service';
export const RELEASE_LABEL = 'io.ferry.release';
/** Hash of everything the container was created from (image and effective configuration). */
export const CONFIG_LABEL = 'io.ferry.config';
export const APP_LABEL = 'io.ferry.app';
export const VOLUME_LABEL = 'io.ferry.volume';
export const NETWORK_LABEL = 'io.ferry.network';

/** One service's container as the agent would create it now. */
export interface ContainerSpec {
  service: string;
  name: string;
  /** sha256 of the canonical create body without the release label: equal hashes, nothing to change. */
  hash: string;
  body: CreateContainerBody;
  /** App networks to connect after create (the create call takes one), with aliases. */
  extraNetworks: { name: string; aliases: string[] }[];
}

const nsOf = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms * 1_000_000);

/** `<app>_<name>` for volumes and networks, as Docker Compose names them. */
export function appResourceName(app: string, name: string): string {
  return `${app}_${name}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

function restartPolicy(restart: string | undefined): { Name: string; MaximumRetryCount?: number } {
  if (!restart) return { Name: 'unless-stopped' };
  if (restart.startsWith('on-failure'))
    return { Name: 'on-failure', MaximumRetryCount: Number(restart.split(':')[1] ?? 0) };
  return { Name: restart === 'no' ? '' : restart };
}

/** Drops undefined and empty values so that an absent key and its default hash the same. */
function compact<T extends Record<string, unknown>>(value: T): T {
  return Object.fromEntries(
    Object.entries(value).filter(
      ([, v]) =>
        v !== undefined &&
        !(Array.isArray(v) && v.length === 0) &&
        !(v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0),
    ),
  ) as T;
}

/**
 * The Docker Engine API create body of one service (docs/compose.md maps each compose key to it).
 * `defaultNetworkMode` (FERRY_NETWORK_MODE) applies to a service that names neither network_mode nor
 * networks, and to every service of a schema-1 release.
 */
export function containerSpec(
  manifest: ReleaseManifest,
  service: ReleaseService,
  variables: DeviceVariables | null | undefined,
  defaultNetworkMode: string,
): ContainerSpec {
  const c: ServiceConfig = service.config ?? {};
  const app = manifest.app?.name ?? 'ferry';
  const env = effectiveEnvironment(c.environment, variables, service.name);
  const exposed: Record<string, object> = {};
  for (const e of c.expose ?? []) exposed[e] = {};
  const bindings: Record<string, { HostIp?: string; HostPort?: string }[]> = {};
  for (const p of c.ports ?? []) {
    const key = `${p.target}/${p.protocol}`;
    exposed[key] = {};
    (bindings[key] ??= []).push(
      compact({ HostIp: p.hostIp, HostPort: p.published === undefined ? '' : String(p.published) }),
    );
  }
  const mounts = (c.volumes ?? []).map((m) =>
    compact({
      Type: m.type,
      Source: m.type === 'volume' ? appResourceName(app, m.source) : m.source,
      Target: m.target,
      ReadOnly: m.readOnly || undefined,
    }),
  );
  const tmpfs: Record<string, string> = {};
  for (const t of c.tmpfs ?? []) {
    const [path, options] = [t.split(':')[0] as string, t.split(':').slice(1).join(':')];
    tmpfs[path] = options;
  }
  const networks = Object.entries(c.networks ?? {}).map(([n, v]) => ({
    name: appResourceName(app, n),
    aliases: [service.name, ...(v.aliases ?? [])],
  }));
  let networkMode = c.networkMode ?? (networks[0]?.name || defaultNetworkMode);
  if (networkMode.startsWith('service:'))
    networkMode = `container:${containerNameOf(networkMode.slice('service:'.length))}`;
  const labels = { ...c.labels, [SERVICE_LABEL]: service.name, [APP_LABEL]: app };
  const hc = c.healthcheck;
  const body: CreateContainerBody = compact({
    Image: service.configDigest,
    Cmd: c.command,
    Entrypoint: c.entrypoint,
    Env: Object.entries(env)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`),
    ExposedPorts: exposed,
    Labels: labels,
    User: c.user,
    WorkingDir: c.workingDir,
    StopSignal: c.stopSignal,
    StopTimeout: c.stopGracePeriodMs === undefined ? undefined : Math.ceil(c.stopGracePeriodMs / 1000),
    Hostname: c.hostname,
    Healthcheck: hc
      ? compact({
          Test: hc.test,
          Interval: nsOf(hc.intervalMs),
          Timeout: nsOf(hc.timeoutMs),
          Retries: hc.retries,
          StartPeriod: nsOf(hc.startPeriodMs),
        })
      : undefined,
    HostConfig: compact({
      NetworkMode: networkMode,
      RestartPolicy: restartPolicy(c.restart),
      PortBindings: bindings,
      Mounts: mounts,
      Tmpfs: tmpfs,
      Devices: (c.devices ?? []).map((d) => ({
        PathOnHost: d.host,
        PathInContainer: d.container,
        CgroupPermissions: d.permissions,
      })),
      Privileged: c.privileged,
      CapAdd: c.capAdd,
      CapDrop: c.capDrop,
      Ulimits: Object.entries(c.ulimits ?? {}).map(([Name, u]) => ({ Name, Soft: u.soft, Hard: u.hard })),
      Sysctls: c.sysctls,
      ShmSize: c.shmSizeBytes,
      ReadonlyRootfs: c.readOnly,
      Init: c.init,
      ExtraHosts: c.extraHosts,
      SecurityOpt: c.securityOpt,
    }),
    NetworkingConfig: networks[0]
      ? { EndpointsConfig: { [networks[0].name]: { Aliases: networks[0].aliases } } }
      : undefined,
  });
  const hash = createHash('sha256').update(canonicalJson(body)).digest('hex');
  body.Labels[CONFIG_LABEL] = hash;
  body.Labels[RELEASE_LABEL] = manifest.releaseId;
  return {
    service: service.name,
    name: `ferry_${service.name.replace(/[^A-Za-z0-9_.-]/g, '-')}_${hash.slice(0, 12)}`,
    hash,
    body,
    extraNetworks: networks.slice(1),
  };
}

/**
 * A service with `network_mode: service:X` lives in the network namespace of X's container: when X gets
 * a new container, so must it (as Docker Compose recreates it). Its hash, and so its name, covers X's.
 */
export function joiningNetworkOf(spec: ContainerSpec, joined: ContainerSpec): ContainerSpec {
  const hash = createHash('sha256').update(`${spec.hash} ${joined.hash}`).digest('hex');
  return {
    ...spec,
    hash,
    name: `${spec.name.slice(0, -12)}${hash.slice(0, 12)}`,
    body: { ...spec.body, Labels: { ...spec.body.Labels, [CONFIG_LABEL]: hash } },
  };
}

/** The name other services use in `network_mode: service:NAME`: a stable alias, kept by the agent. */
export function containerNameOf(service: string): string {
  return `ferry_${service.replace(/[^A-Za-z0-9_.-]/g, '-')}`;
}
