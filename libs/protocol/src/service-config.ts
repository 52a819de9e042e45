// Zod-free on purpose: the device agent reads these types and functions through @ferry/protocol/wire.
// The compose schema that produces them (server side, with zod) is in compose.ts; docs/compose.md
// describes every field.

/** One published port: `ports: ["8080:80/udp"]` → `{ target: 80, published: 8080, protocol: 'udp' }`. */
export interface PortMapping {
  target: number;
  /** Host port; absent: the engine picks one. */
  published?: number;
  protocol: 'tcp' | 'udp';
  /** Host address to bind; absent: all addresses. */
  hostIp?: string;
}

/** A mount of a service: a named volume of the app (`<app>_<name>` on the device) or an allowed bind mount. */
export interface ServiceMount {
  type: 'volume' | 'bind';
  /** Volume name as the compose file declares it, or the host path of a bind mount. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** `devices: ["/dev/ttyUSB0:/dev/ttyUSB0:rwm"]`. */
export interface DeviceMapping {
  host: string;
  container: string;
  permissions: string;
}

export type DependencyCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

/** Durations in milliseconds (compose writes `1m30s`). */
export interface Healthcheck {
  /** `["NONE"]` disables the image's check; else `["CMD", ...]` or `["CMD-SHELL", "..."]`. */
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

/** How a changed service is replaced (balena's names and meanings; docs/compose.md). */
export const UPDATE_STRATEGIES = [
  'download-then-kill',
  'kill-then-download',
  'delete-then-download',
  'hand-over',
] as const;
export type UpdateStrategy = (typeof UPDATE_STRATEGIES)[number];

/** Labels a compose file sets on a service to choose its update strategy (ferry's, or balena's spelling). */
export const UPDATE_STRATEGY_LABELS = ['io.ferry.update.strategy', 'io.balena.update.strategy'] as const;
export const HANDOVER_TIMEOUT_LABELS = [
  'io.ferry.update.handover-timeout',
  'io.balena.update.handover-timeout',
] as const;

/**
 * The runtime configuration of one service, as the signed release manifest carries it (schema
 * version 2). Absent fields mean the engine's default. Normalised from the compose file: list and map
 * forms become one form, durations milliseconds, sizes bytes.
 */
export interface ServiceConfig {
  command?: string[];
  entrypoint?: string[];
  /** The release's own environment; configuration variables are overlaid on the device (effectiveEnvironment). */
  environment?: Record<string, string>;
  ports?: PortMapping[];
  /** `"80/tcp"` */
  expose?: string[];
  volumes?: ServiceMount[];
  /** `"/run"` or `"/run:size=64k"` */
  tmpfs?: string[];
  devices?: DeviceMapping[];
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  /** `host`, `none`, `bridge`, `service:<name>`; exclusive with `networks`. */
  networkMode?: string;
  /** App networks the service joins (names as the compose file declares them), with aliases. */
  networks?: Record<string, { aliases?: string[] }>;
  /** `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`. */
  restart?: string;
  labels?: Record<string, string>;
  dependsOn?: Record<string, { condition: DependencyCondition }>;
  healthcheck?: Healthcheck;
  user?: string;
  workingDir?: string;
  stopSignal?: string;
  stopGracePeriodMs?: number;
  ulimits?: Record<string, { soft: number; hard: number }>;
  sysctls?: Record<string, string>;
  shmSizeBytes?: number;
  readOnly?: boolean;
  init?: boolean;
  hostname?: string;
  /** `"host:ip"` */
  extraHosts?: string[];
  securityOpt?: string[];
}

/** Top-level `volumes` and `networks` of the app. */
export interface AppConfig {
  /** Named volumes: created once as `<app>_<name>` on the device and kept across releases. */
  volumes: Record<string, { labels?: Record<string, string>; driverOpts?: Record<string, string> }>;
  networks: Record<string, { internal?: boolean; labels?: Record<string, string> }>;
}

/**
 * The configuration variables a device receives (docs/compose.md, "Variables"): four levels, most
 * specific wins, as balena: fleet < fleet+service < device < device+service.
 */
export interface DeviceVariables {
  /** Grows with every change that concerns the device; the agent reports the version it runs. */
  version: number;
  fleet: Record<string, string>;
  /** fleet+service level, by service name. */
  fleetServices: Record<string, Record<string, string>>;
  device: Record<string, string>;
  /** device+service level, by service name. */
  deviceServices: Record<string, Record<string, string>>;
}

/**
 * The environment a service's container gets: the release's compose `environment`, overlaid with the
 * variables in precedence order fleet < fleet+service < device < device+service.
 */
export function effectiveEnvironment(
  serviceEnv: Record<string, string> | undefined,
  variables: DeviceVariables | null | undefined,
  serviceName: string,
): Record<string, string> {
  return {
    ...serviceEnv,
    ...variables?.fleet,
    ...variables?.fleetServices[serviceName],
    ...variables?.device,
    ...variables?.deviceServices[serviceName],
  };
}

/** The service's update strategy from its labels; `download-then-kill` when none is set. */
export function updateStrategyOf(config: ServiceConfig | undefined): UpdateStrategy {
  for (const label of UPDATE_STRATEGY_LABELS) {
    const value = config?.labels?.[label];
    if (value && (UPDATE_STRATEGIES as readonly string[]).includes(value)) return value as UpdateStrategy;
  }
  return 'download-then-kill';
}

/** The hand-over timeout from its label (milliseconds, default one minute). */
export function handoverTimeoutMsOf(config: ServiceConfig | undefined): number {
  for (const label of HANDOVER_TIMEOUT_LABELS) {
    const value = Number(config?.labels?.[label]);
    if (Number.isFinite(value) && value > 0) return value;
  }
  return 60_000;
}

/**
 * Services in start order: every service after the services it depends on (stops run in reverse).
 * Ties keep the manifest's order. The server refuses cycles at push; here a cycle falls back to order.
 */
export function startOrder<T extends { name: string; config?: ServiceConfig }>(services: T[]): T[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const out: T[] = [];
  const visit = (service: T): void => {
    if (done.has(service.name) || visiting.has(service.name)) return;
    visiting.add(service.name);
    const joins = service.config?.networkMode?.startsWith('service:')
      ? [service.config.networkMode.slice('service:'.length)]
      : [];
    for (const dep of [...Object.keys(service.config?.dependsOn ?? {}), ...joins]) {
      const d = byName.get(dep);
      if (d) visit(d);
    }
    visiting.delete(service.name);
    done.add(service.name);
    out.push(service);
  };
  services.forEach(visit);
  return out;
}
