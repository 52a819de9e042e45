import type { DeviceVariables, ReleaseManifest, UpdateStrategy } from '@ferry/protocol/wire';
import { startOrder, updateStrategyOf } from '@ferry/protocol/wire';
import {
  APP_LABEL,
  CONFIG_LABEL,
  NETWORK_LABEL,
  SERVICE_LABEL,
  VOLUME_LABEL,
  appResourceName,
  containerSpec,
  joiningNetworkOf,
  type ContainerSpec,
} from './container-spec';
import type { ContainerInspect, EngineClient, EngineContainer } from './engine';
import { HealthCheckError } from './errors';
import { sleep } from './downloader';

export { RELEASE_LABEL, SERVICE_LABEL } from './container-spec';

/** Every container the agent manages (labelled `io.ferry.service`). */
export function managedContainers(engine: EngineClient): Promise<EngineContainer[]> {
  return engine.containers(SERVICE_LABEL);
}

/** What an update does to one service. */
export interface ServicePlan {
  service: string;
  /** keep: same image and effective configuration, untouched; replace/create: a new container; remove: gone. */
  action: 'keep' | 'replace' | 'create' | 'remove';
  strategy: UpdateStrategy;
  /** The running container (keep, replace, remove). */
  oldId?: string;
  /** The new container's name (replace, create) and, once created, its id. */
  newName?: string;
  newId?: string;
}

/** Desired containers of every service of `manifest`, with the variables the device holds. */
export function releaseSpecs(
  manifest: ReleaseManifest,
  variables: DeviceVariables | null | undefined,
  defaultNetworkMode: string,
): ContainerSpec[] {
  const specs: ContainerSpec[] = [];
  for (const s of startOrder(manifest.services)) {
    const spec = containerSpec(manifest, s, variables, defaultNetworkMode);
    const mode = s.config?.networkMode ?? '';
    const joined = mode.startsWith('service:')
      ? specs.find((x) => x.service === mode.slice('service:'.length))
      : undefined;
    specs.push(joined ? joiningNetworkOf(spec, joined) : spec);
  }
  return specs;
}

/**
 * Compares the desired containers with the managed ones: a service whose container carries the same
 * configuration hash is kept as it is (same container, no restart).
 */
export async function planServices(
  engine: EngineClient,
  manifest: ReleaseManifest,
  specs: ContainerSpec[],
): Promise<ServicePlan[]> {
  const existing = await managedContainers(engine);
  const used = new Set<string>();
  const plan: ServicePlan[] = [];
  for (const spec of specs) {
    const service = manifest.services.find((s) => s.name === spec.service);
    const strategy = updateStrategyOf(service?.config);
    const mine = existing.filter((c) => c.Labels[SERVICE_LABEL] === spec.service && !used.has(c.Id));
    // A container the engine never started is a leftover, never the one to keep: the engine may finish
    // a create after the agent that asked for it was killed, and after the restart undid that swap.
    const same = mine.find((c) => c.Labels[CONFIG_LABEL] === spec.hash && c.State !== 'created');
    if (same) {
      used.add(same.Id);
      plan.push({ service: spec.service, action: 'keep', strategy, oldId: same.Id });
      continue;
    }
    const old = mine.find((c) => c.State === 'running') ?? mine[0];
    if (old) used.add(old.Id);
    plan.push({
      service: spec.service,
      action: old ? 'replace' : 'create',
      strategy,
      ...(old && { oldId: old.Id }),
      newName: spec.name,
    });
  }
  for (const c of existing)
    if (!used.has(c.Id))
      plan.push({
        service: c.Labels[SERVICE_LABEL] ?? '?',
        action: 'remove',
        strategy: 'download-then-kill',
        oldId: c.Id,
      });
  return plan;
}

/** Creates the app's named volumes and networks that do not exist yet; never removes one. */
export async function ensureAppResources(engine: EngineClient, manifest: ReleaseManifest): Promise<void> {
  const app = manifest.app;
  if (!app) return;
  const volumes = new Set((await engine.volumes(APP_LABEL)).map((v) => v.Name));
  for (const [name, v] of Object.entries(app.volumes)) {
    const full = appResourceName(app.name, name);
    if (!volumes.has(full))
      await engine.createVolume(
        full,
        { ...v.labels, [APP_LABEL]: app.name, [VOLUME_LABEL]: name },
        v.driverOpts ?? {},
      );
  }
  const networks = new Set((await engine.networks(APP_LABEL)).map((n) => n.Name));
  for (const [name, n] of Object.entries(app.networks)) {
    const full = appResourceName(app.name, name);
    if (!networks.has(full))
      await engine.createNetwork(
        full,
        { ...n.labels, [APP_LABEL]: app.name, [NETWORK_LABEL]: name },
        n.internal ?? false,
      );
  }
}

/** Creates one service's container (not started); a leftover of the same name is replaced. */
export async function createServiceContainer(
  engine: EngineClient,
  spec: ContainerSpec,
  containerOf: (service: string) => string | undefined,
): Promise<string> {
  await engine.removeContainer(spec.name);
  const body = structuredClone(spec.body);
  const mode = (body.HostConfig.NetworkMode as string | undefined) ?? '';
  // network_mode: service:NAME joins the container that service runs now.
  if (mode.startsWith('container:ferry_')) {
    const other = containerOf(mode.slice('container:ferry_'.length));
    if (other) body.HostConfig.NetworkMode = `container:${other}`;
  }
  const id = await engine.createContainer(spec.name, body);
  for (const n of spec.extraNetworks) await engine.connectNetwork(n.name, id, n.aliases);
  return id;
}

/** A container's create body rebuilt from its inspect answer, to recreate it after delete-then-download. */
export function recreateBody(info: ContainerInspect & Record<string, unknown>): Record<string, unknown> {
  const config = (info.Config ?? {}) as Record<string, unknown>;
  const networks = (info.NetworkSettings as { Networks?: Record<string, unknown> } | undefined)?.Networks;
  return {
    ...config,
    HostConfig: info.HostConfig,
    ...(networks && { NetworkingConfig: { EndpointsConfig: networks } }),
  };
}

/** Waits until a dependency is ready: healthy, or exited with 0 for `service_completed_successfully`. */
export async function waitDependency(
  engine: EngineClient,
  id: string,
  condition: 'service_healthy' | 'service_completed_successfully',
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await engine.inspectContainer(id);
    if (!info) throw new HealthCheckError(`dependency ${id.slice(0, 12)} disappeared`);
    if (condition === 'service_healthy') {
      const health = info.State.Health?.Status;
      if (health === 'healthy') return;
      if (health === undefined)
        throw new HealthCheckError(`dependency ${id.slice(0, 12)} has no health check`);
      if (health === 'unhealthy') throw new HealthCheckError(`dependency ${id.slice(0, 12)} is unhealthy`);
    } else if (!info.State.Running && info.State.Status === 'exited') {
      if (info.State.ExitCode === 0) return;
      throw new HealthCheckError(`dependency ${id.slice(0, 12)} exited with code ${info.State.ExitCode}`);
    }
    if (Date.now() > deadline)
      throw new HealthCheckError(`dependency ${id.slice(0, 12)} not ready after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * Waits for new containers to prove themselves: the engine's health status when the image has a
 * health check, else still running after the grace period. Throws {@link HealthCheckError}.
 */
export async function waitHealthy(
  engine: EngineClient,
  ids: string[],
  graceMs: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + Math.max(timeoutMs, graceMs);
  const graceEnd = Date.now() + graceMs;
  for (const id of ids) {
    for (;;) {
      const info = await engine.inspectContainer(id);
      if (!info) throw new HealthCheckError(`container ${id.slice(0, 12)} disappeared`);
      // The restart policy brings a dying container back: a restart during the check is a failure.
      if (info.State.Restarting || info.RestartCount > 0)
        throw new HealthCheckError(
          `container ${id.slice(0, 12)} keeps exiting (exit code ${info.State.ExitCode}, ${info.RestartCount} restarts)`,
        );
      if (!info.State.Running)
        throw new HealthCheckError(
          `container ${id.slice(0, 12)} is ${info.State.Status} (exit code ${info.State.ExitCode})`,
        );
      const health = info.State.Health?.Status;
      if (health === 'unhealthy') throw new HealthCheckError(`container ${id.slice(0, 12)} is unhealthy`);
      if (health === 'healthy' || (health === undefined && Date.now() >= graceEnd)) break;
      if (Date.now() > deadline)
        throw new HealthCheckError(
          `container ${id.slice(0, 12)} not healthy after ${timeoutMs} ms (${health ?? 'no health check'})`,
        );
      await sleep(Math.min(500, Math.max(50, graceEnd - Date.now())));
    }
  }
}
