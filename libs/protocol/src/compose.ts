import { isAbsolute, posix } from 'node:path';
import { z } from 'zod';
import { InvalidComposeError } from './errors';
import type {
  AppConfig,
  DependencyCondition,
  DeviceMapping,
  PortMapping,
  ServiceConfig,
  ServiceMount,
} from './service-config';
import { HANDOVER_TIMEOUT_LABELS, UPDATE_STRATEGIES, UPDATE_STRATEGY_LABELS } from './service-config';

// The compose subset Ferry runs (docs/compose.md). Every key outside it is refused with its path: a
// release must never run without something its author wrote.

/** A service, volume or network name of a compose file. */
export const ComposeNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'letters, digits, "_", "." and "-" only');
const Name = ComposeNameSchema;
const Scalar = z.union([z.string(), z.number(), z.boolean()]);
const StringList = z.array(z.string().max(4096)).max(256);
const StringOrList = z.union([z.string().max(4096), StringList]);
/** Compose's "map or list of KEY=VALUE" (environment, labels, sysctls, extra_hosts). */
const MapOrList = z.union([
  z.record(z.string(), Scalar.nullable()),
  z.array(z.string().max(65536)).max(1024),
]);
const Duration = z.union([
  z.string().regex(/^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/, 'a duration like 10s, 1m30s'),
  z.number().min(0),
]);
const Size = z.union([
  z.string().regex(/^\d+(\.\d+)?\s*([bkmg]b?)?$/i, 'a size like 64m'),
  z.number().int().min(0),
]);

const PortLong = z.strictObject({
  target: z.number().int().min(1).max(65535),
  published: z.union([z.number().int().min(1).max(65535), z.string().regex(/^\d{1,5}$/)]).optional(),
  protocol: z.enum(['tcp', 'udp']).optional(),
  host_ip: z.string().max(64).optional(),
  mode: z.literal('host').optional(),
});
const VolumeLong = z.strictObject({
  type: z.enum(['volume', 'bind', 'tmpfs']),
  source: z.string().max(4096).optional(),
  target: z.string().max(4096),
  read_only: z.boolean().optional(),
});
const Healthcheck = z.strictObject({
  test: StringOrList.optional(),
  interval: Duration.optional(),
  timeout: Duration.optional(),
  retries: z.number().int().min(0).max(1000).optional(),
  start_period: Duration.optional(),
  disable: z.boolean().optional(),
});
const DependsOn = z.union([
  z.array(Name).max(256),
  z.record(
    Name,
    z.strictObject({
      condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']).optional(),
      restart: z.boolean().optional(),
      required: z.literal(true).optional(),
    }),
  ),
]);
const Ulimit = z.union([
  z.number().int(),
  z.strictObject({ soft: z.number().int(), hard: z.number().int() }),
]);

/** One service of the compose file: exactly the keys Ferry supports. */
export const ComposeServiceSchema = z.strictObject({
  image: z.string().min(1).max(512),
  command: StringOrList.optional(),
  entrypoint: StringOrList.optional(),
  environment: MapOrList.optional(),
  ports: z
    .array(z.union([z.string().max(128), z.number().int(), PortLong]))
    .max(256)
    .optional(),
  expose: z
    .array(z.union([z.string().regex(/^\d{1,5}(\/(tcp|udp))?$/), z.number().int().min(1).max(65535)]))
    .max(256)
    .optional(),
  volumes: z
    .array(z.union([z.string().max(4096), VolumeLong]))
    .max(256)
    .optional(),
  tmpfs: StringOrList.optional(),
  devices: StringList.optional(),
  privileged: z.boolean().optional(),
  cap_add: StringList.optional(),
  cap_drop: StringList.optional(),
  network_mode: z
    .string()
    .regex(/^(host|none|bridge|service:[a-zA-Z0-9][a-zA-Z0-9_.-]*)$/, 'host, none, bridge or service:NAME')
    .optional(),
  networks: z
    .union([
      z.array(Name),
      z.record(Name, z.strictObject({ aliases: z.array(z.string().max(255)).max(64).optional() }).nullable()),
    ])
    .optional(),
  restart: z
    .string()
    .regex(
      /^(no|always|unless-stopped|on-failure(:\d{1,4})?)$/,
      'no, always, unless-stopped or on-failure[:N]',
    )
    .optional(),
  labels: MapOrList.optional(),
  depends_on: DependsOn.optional(),
  healthcheck: Healthcheck.optional(),
  user: z.string().max(256).optional(),
  working_dir: z.string().max(4096).optional(),
  stop_signal: z
    .string()
    .regex(/^(SIG[A-Z0-9+-]+|\d{1,2})$/, 'a signal name like SIGTERM')
    .optional(),
  stop_grace_period: Duration.optional(),
  ulimits: z.record(z.string().regex(/^[a-z]+$/), Ulimit).optional(),
  sysctls: MapOrList.optional(),
  shm_size: Size.optional(),
  read_only: z.boolean().optional(),
  init: z.boolean().optional(),
  hostname: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$/)
    .optional(),
  extra_hosts: MapOrList.optional(),
  security_opt: StringList.optional(),
});

export const ComposeFileSchema = z
  .object({
    /** Obsolete in the compose spec and ignored, as Docker Compose does. */
    version: z.union([z.string(), z.number()]).optional(),
    services: z.record(Name, ComposeServiceSchema),
    volumes: z
      .record(
        Name,
        z
          .strictObject({
            driver: z.literal('local').optional(),
            driver_opts: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
            labels: MapOrList.optional(),
          })
          .nullable(),
      )
      .optional(),
    networks: z
      .record(
        Name,
        z
          .strictObject({
            driver: z.literal('bridge').optional(),
            internal: z.boolean().optional(),
            labels: MapOrList.optional(),
          })
          .nullable(),
      )
      .optional(),
  })
  // `x-` keys hold YAML anchors for reuse; they configure nothing.
  .catchall(z.unknown())
  .superRefine((doc, ctx) => {
    for (const key of Object.keys(doc))
      if (!['version', 'services', 'volumes', 'networks'].includes(key) && !key.startsWith('x-'))
        ctx.addIssue({ code: 'custom', path: [key], message: `unsupported top-level key "${key}"` });
  });

/** One service of a parsed compose file: the image it names and its normalised configuration. */
export interface ComposeService {
  name: string;
  image: string;
  config: ServiceConfig;
}

export interface ComposeApp {
  services: ComposeService[];
  app: AppConfig;
}

export interface ComposeOptions {
  /** Host paths the fleet allows bind mounts of (the path itself or anything under it). */
  allowedBindMounts: readonly string[];
}

const WHY_REFUSED: Record<string, string> = {
  env_file:
    'env_file is not supported: the file would have to travel with the release; write the values under environment, or use configuration variables (ferry env) for values that differ per device',
  build: 'build is not supported: build the image first and push its archive with the compose file',
  extends: 'extends is not supported: write the service out in full (YAML anchors work)',
  secrets: 'secrets are not supported: use configuration variables marked secret (ferry env)',
  configs: 'configs are not supported: bake the file into the image or use configuration variables',
  profiles: 'profiles are not supported: every service of a release runs',
  deploy: 'deploy is not supported (swarm mode); use restart and the update-strategy labels',
  container_name:
    'container_name is not supported: the agent names containers so that old and new can run side by side',
  links: 'links is not supported: services reach each other by name on the app networks',
  volumes_from: 'volumes_from is not supported: mount the same named volume in both services',
};

/** Formats zod's issues as `services.web: ...` lines an operator can act on. */
function composeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.join('.');
    if (issue.code === 'unrecognized_keys')
      return issue.keys
        .map((key) => {
          const where = path ? `${path}.${key}` : key;
          return `${where}: ${WHY_REFUSED[key] ?? `unsupported key "${key}" (docs/compose.md lists the supported keys)`}`;
        })
        .join('; ');
    return `${path || 'compose file'}: ${issue.message}`;
  });
}

/**
 * Validates a compose document (already parsed from YAML) and normalises it into the services'
 * configurations of a release manifest. Throws {@link InvalidComposeError} naming every offending
 * service and key.
 */
export function parseCompose(doc: unknown, options: ComposeOptions): ComposeApp {
  const parsed = ComposeFileSchema.safeParse(doc);
  if (!parsed.success) {
    const reasons = composeIssues(parsed.error);
    throw new InvalidComposeError(`compose file refused: ${reasons.join('; ')}`, { issues: reasons });
  }
  const file = parsed.data;
  const problems: string[] = [];
  const volumeNames = new Set(Object.keys(file.volumes ?? {}));
  const networkNames = new Set(Object.keys(file.networks ?? {}));
  const serviceNames = new Set(Object.keys(file.services));
  const services: ComposeService[] = [];
  if (serviceNames.size === 0) problems.push('services: the compose file has no service');
  for (const [name, raw] of Object.entries(file.services)) {
    const at = `services.${name}`;
    const fail = (key: string, message: string): void => void problems.push(`${at}.${key}: ${message}`);
    const config: ServiceConfig = {};
    if (raw.command !== undefined) config.command = words(raw.command);
    if (raw.entrypoint !== undefined) config.entrypoint = words(raw.entrypoint);
    if (raw.environment !== undefined) {
      const env = keyValues(raw.environment, 'environment', fail);
      for (const [key, value] of Object.entries(env))
        if (value === null)
          fail(
            `environment.${key}`,
            'has no value (Docker Compose takes it from the shell running it; write the value, or use a configuration variable)',
          );
      config.environment = definedValues(env);
    }
    if (raw.ports) config.ports = raw.ports.map((p, i) => portOf(p, (m) => fail(`ports.${i}`, m)));
    if (raw.expose) config.expose = raw.expose.map((e) => (String(e).includes('/') ? String(e) : `${e}/tcp`));
    if (raw.volumes)
      config.volumes = raw.volumes.flatMap((v, i) => {
        const mount = mountOf(v, (m) => fail(`volumes.${i}`, m));
        if (!mount) return [];
        if (mount.type === 'volume' && !volumeNames.has(mount.source))
          fail(`volumes.${i}`, `volume "${mount.source}" is not declared under the top-level volumes`);
        if (mount.type === 'bind' && !bindAllowed(mount.source, options.allowedBindMounts))
          fail(
            `volumes.${i}`,
            `bind mount of ${mount.source} is not allowed by the fleet (allowed: ${options.allowedBindMounts.join(', ') || 'none'}; set bindMounts with ferry fleet settings)`,
          );
        return [mount];
      });
    if (raw.tmpfs !== undefined) config.tmpfs = typeof raw.tmpfs === 'string' ? [raw.tmpfs] : raw.tmpfs;
    if (raw.devices) config.devices = raw.devices.map((d, i) => deviceOf(d, (m) => fail(`devices.${i}`, m)));
    if (raw.privileged !== undefined) config.privileged = raw.privileged;
    if (raw.cap_add) config.capAdd = raw.cap_add;
    if (raw.cap_drop) config.capDrop = raw.cap_drop;
    if (raw.network_mode) {
      config.networkMode = raw.network_mode;
      const other = raw.network_mode.startsWith('service:') ? raw.network_mode.slice(8) : null;
      if (other !== null && !serviceNames.has(other)) fail('network_mode', `no service "${other}"`);
      if (other === name) fail('network_mode', 'a service cannot join its own network namespace');
      if (raw.networks) fail('networks', 'cannot be combined with network_mode');
    }
    if (raw.networks) {
      const nets = Array.isArray(raw.networks)
        ? Object.fromEntries(raw.networks.map((n) => [n, {}]))
        : Object.fromEntries(
            Object.entries(raw.networks).map(([n, v]) => [n, v?.aliases ? { aliases: v.aliases } : {}]),
          );
      for (const n of Object.keys(nets))
        if (!networkNames.has(n)) fail(`networks.${n}`, 'is not declared under the top-level networks');
      config.networks = nets;
    }
    if (raw.restart) config.restart = raw.restart;
    if (raw.labels) {
      const labels = keyValues(raw.labels, 'labels', fail);
      config.labels = Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v ?? '']));
      for (const label of UPDATE_STRATEGY_LABELS) {
        const value = config.labels[label];
        if (value !== undefined && !(UPDATE_STRATEGIES as readonly string[]).includes(value))
          fail(`labels.${label}`, `"${value}" is not one of ${UPDATE_STRATEGIES.join(', ')}`);
      }
      for (const label of HANDOVER_TIMEOUT_LABELS) {
        const value = config.labels[label];
        if (value !== undefined && !/^\d{1,9}$/.test(value))
          fail(`labels.${label}`, 'must be a whole number of milliseconds');
      }
      for (const key of Object.keys(config.labels))
        if (key.startsWith('io.ferry.') && !key.startsWith('io.ferry.update.'))
          fail(`labels.${key}`, "io.ferry.* labels are the agent's own");
    }
    if (raw.depends_on) {
      const deps: Record<string, { condition: DependencyCondition }> = Array.isArray(raw.depends_on)
        ? Object.fromEntries(raw.depends_on.map((d) => [d, { condition: 'service_started' as const }]))
        : Object.fromEntries(
            Object.entries(raw.depends_on).map(([d, v]) => [
              d,
              { condition: v.condition ?? 'service_started' },
            ]),
          );
      for (const d of Object.keys(deps))
        if (!serviceNames.has(d)) fail(`depends_on.${d}`, `no service "${d}"`);
        else if (d === name) fail(`depends_on.${d}`, 'a service cannot depend on itself');
      config.dependsOn = deps;
    }
    if (raw.healthcheck) {
      const h = raw.healthcheck;
      const test = h.disable ? ['NONE'] : typeof h.test === 'string' ? ['CMD-SHELL', h.test] : h.test;
      if (!test || test.length === 0) fail('healthcheck.test', 'is required (or disable: true)');
      else if (!['NONE', 'CMD', 'CMD-SHELL'].includes(test[0] as string))
        fail('healthcheck.test', 'must start with CMD, CMD-SHELL or NONE');
      config.healthcheck = {
        test: test ?? ['NONE'],
        ...(h.interval !== undefined && { intervalMs: durationMs(h.interval) }),
        ...(h.timeout !== undefined && { timeoutMs: durationMs(h.timeout) }),
        ...(h.retries !== undefined && { retries: h.retries }),
        ...(h.start_period !== undefined && { startPeriodMs: durationMs(h.start_period) }),
      };
    }
    if (raw.user !== undefined) config.user = raw.user;
    if (raw.working_dir !== undefined) config.workingDir = raw.working_dir;
    if (raw.stop_signal !== undefined) config.stopSignal = raw.stop_signal;
    if (raw.stop_grace_period !== undefined) config.stopGracePeriodMs = durationMs(raw.stop_grace_period);
    if (raw.ulimits)
      config.ulimits = Object.fromEntries(
        Object.entries(raw.ulimits).map(([k, v]) => [k, typeof v === 'number' ? { soft: v, hard: v } : v]),
      );
    if (raw.sysctls) config.sysctls = definedValues(keyValues(raw.sysctls, 'sysctls', fail));
    if (raw.shm_size !== undefined) config.shmSizeBytes = sizeBytes(raw.shm_size);
    if (raw.read_only !== undefined) config.readOnly = raw.read_only;
    if (raw.init !== undefined) config.init = raw.init;
    if (raw.hostname !== undefined) config.hostname = raw.hostname;
    if (raw.extra_hosts) {
      const hosts = Array.isArray(raw.extra_hosts)
        ? raw.extra_hosts.map((h) => h.replace('=', ':'))
        : Object.entries(raw.extra_hosts).map(([h, ip]) => `${h}:${String(ip)}`);
      for (const h of hosts) if (!/^[^:\s]+:\S+$/.test(h)) fail('extra_hosts', `"${h}" is not HOST:IP`);
      config.extraHosts = hosts;
    }
    if (raw.security_opt) config.securityOpt = raw.security_opt;
    services.push({ name, image: raw.image, config });
  }
  const cycle = dependencyCycle(services);
  if (cycle) problems.push(`depends_on: services depend on each other in a cycle (${cycle.join(' → ')})`);
  if (problems.length > 0)
    throw new InvalidComposeError(`compose file refused: ${problems.join('; ')}`, { issues: problems });
  const app: AppConfig = {
    volumes: Object.fromEntries(
      Object.entries(file.volumes ?? {}).map(([n, v]) => [
        n,
        {
          ...(v?.labels && { labels: stringValues(v.labels) }),
          ...(v?.driver_opts && {
            driverOpts: Object.fromEntries(Object.entries(v.driver_opts).map(([k, x]) => [k, String(x)])),
          }),
        },
      ]),
    ),
    networks: Object.fromEntries(
      Object.entries(file.networks ?? {}).map(([n, v]) => [
        n,
        {
          ...(v?.internal !== undefined && { internal: v.internal }),
          ...(v?.labels && { labels: stringValues(v.labels) }),
        },
      ]),
    ),
  };
  return { services, app };
}

/** Compose's string form of command/entrypoint is split like a shell does (quotes, backslashes). */
export function words(value: string | string[]): string[] {
  if (Array.isArray(value)) return value;
  const out: string[] = [];
  let current = '';
  let quote: '"' | "'" | null = null;
  let any = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < value.length) current += value[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      any = true;
    } else if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
      any = true;
    } else if (/\s/.test(c)) {
      if (current || any) out.push(current);
      current = '';
      any = false;
    } else current += c;
  }
  if (current || any) out.push(current);
  return out;
}

function keyValues(
  value: Record<string, string | number | boolean | null> | string[],
  key: string,
  fail: (key: string, message: string) => void,
): Record<string, string | null> {
  if (!Array.isArray(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === null ? null : String(v)]));
  const out: Record<string, string | null> = {};
  for (const item of value) {
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq);
    if (!k) fail(key, `"${item}" has no name`);
    else out[k] = eq < 0 ? null : item.slice(eq + 1);
  }
  return out;
}

function definedValues(map: Record<string, string | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(map).filter((e): e is [string, string] => e[1] !== null));
}

function stringValues(
  value: Record<string, string | number | boolean | null> | string[],
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(keyValues(value, 'labels', () => undefined)).map(([k, v]) => [k, v ?? '']),
  );
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** `1m30s` → 90000; a bare number is seconds (as Compose reads it). */
export function durationMs(value: string | number): number {
  if (typeof value === 'number') return Math.round(value * 1000);
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g))
    ms += Number(n) * (DURATION_UNITS[unit as string] as number);
  return Math.round(ms);
}

/** `64m` → 67108864; a bare number is bytes. */
export function sizeBytes(value: string | number): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(value.trim());
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m?.[2] ?? '').toLowerCase()] ?? 1;
  return Math.round(Number(m?.[1] ?? 0) * unit);
}

function portOf(value: string | number | z.infer<typeof PortLong>, fail: (m: string) => void): PortMapping {
  if (typeof value === 'object')
    return {
      target: value.target,
      ...(value.published !== undefined && { published: Number(value.published) }),
      protocol: value.protocol ?? 'tcp',
      ...(value.host_ip && { hostIp: value.host_ip }),
    };
  const text = String(value);
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?:(\d{1,5}):)?(\d{1,5})(?:\/(tcp|udp))?$/.exec(text);
  if (!m) {
    fail(`"${text}" is not [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL] (port ranges are not supported)`);
    return { target: 0, protocol: 'tcp' };
  }
  const [, hostIp, published, target, protocol] = m;
  const port = (p: string): number => {
    const n = Number(p);
    if (n < 1 || n > 65535) fail(`port ${p} is out of range`);
    return n;
  };
  return {
    target: port(target as string),
    ...(published && { published: port(published) }),
    protocol: (protocol as 'tcp' | 'udp' | undefined) ?? 'tcp',
    ...(hostIp && { hostIp: hostIp.replace(/^\[|\]$/g, '') }),
  };
}

function mountOf(value: string | z.infer<typeof VolumeLong>, fail: (m: string) => void): ServiceMount | null {
  let source: string | undefined;
  let target: string;
  let readOnly = false;
  let type: 'volume' | 'bind' | 'tmpfs';
  if (typeof value === 'object') {
    ({ source, target, type } = value);
    readOnly = value.read_only ?? false;
    if (type === 'tmpfs') {
      fail('tmpfs mounts go under the tmpfs key');
      return null;
    }
  } else {
    const parts = value.split(':');
    if (parts.length === 1) {
      fail(
        `"${value}" is an anonymous volume: name it (NAME:${value}) and declare it, so its data survives updates`,
      );
      return null;
    }
    if (parts.length > 3) {
      fail(`"${value}" is not SOURCE:TARGET[:ro|rw]`);
      return null;
    }
    [source, target] = parts as [string, string];
    const mode = parts[2];
    if (mode !== undefined && mode !== 'ro' && mode !== 'rw') fail(`mode "${mode}" is not ro or rw`);
    readOnly = mode === 'ro';
    type = source.startsWith('/') || source.startsWith('.') || source.startsWith('~') ? 'bind' : 'volume';
  }
  if (!source) {
    fail('a mount needs a source');
    return null;
  }
  if (!isAbsolute(target)) fail(`target ${target} is not an absolute path`);
  if (type === 'bind' && !isAbsolute(source)) {
    fail(`bind mount source ${source} must be an absolute path on the device`);
    return null;
  }
  return { type, source: type === 'bind' ? posix.normalize(source) : source, target, readOnly };
}

function bindAllowed(source: string, allowed: readonly string[]): boolean {
  return allowed.some((a) => {
    const base = posix.normalize(a).replace(/\/+$/, '') || '/';
    return source === base || source.startsWith(base === '/' ? '/' : `${base}/`);
  });
}

function deviceOf(value: string, fail: (m: string) => void): DeviceMapping {
  const [host, container, permissions, ...rest] = value.split(':');
  if (!host || !isAbsolute(host) || rest.length > 0 || (container !== undefined && !isAbsolute(container)))
    fail(`"${value}" is not HOST_PATH[:CONTAINER_PATH[:PERMISSIONS]]`);
  if (permissions !== undefined && !/^[rwm]{1,3}$/.test(permissions))
    fail(`permissions "${permissions}" are not of r, w, m`);
  return { host: host ?? '', container: container ?? host ?? '', permissions: permissions ?? 'rwm' };
}

function dependencyCycle(services: ComposeService[]): string[] | null {
  const deps = new Map(services.map((s) => [s.name, Object.keys(s.config.dependsOn ?? {})]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | null => {
    if (state.get(name) === 'done') return null;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const d of deps.get(name) ?? []) {
      const found = visit(d);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return null;
  };
  for (const s of services) {
    const found = visit(s.name);
    if (found) return found;
  }
  return null;
}
