import type { ReleaseManifest } from '../../../libs/protocol/src/release';
import type { EngineClient, EngineContainer } from './engine';
import { HealthCheckError } from './errors';
import { sleep } from './downloader';

export const SERVICE_LABEL = 'io.ferry.service';
export const RELEASE_LABEL = 'io.ferry.release';

/** Every container the agent manages (labelled `io.ferry.service`). */
export function managedContainers(engine: EngineClient): Promise<EngineContainer[]> {
  return engine.containers(SERVICE_LABEL);
}

export function containerName(service: string, version: number): string {
  return `ferry_${service.replace(/[^A-Za-z0-9_.-]/g, '-')}_v${version}`;
}

/** Creates one container per service of `manifest` (not started); a leftover of the same name is replaced. */
export async function createReleaseContainers(
  engine: EngineClient,
  manifest: ReleaseManifest,
  networkMode: string,
): Promise<string[]> {
  const ids: string[] = [];
  for (const service of manifest.services) {
    const name = containerName(service.name, manifest.version);
    await engine.removeContainer(name);
    ids.push(
      await engine.createContainer({
        name,
        image: service.configDigest,
        labels: { [SERVICE_LABEL]: service.name, [RELEASE_LABEL]: manifest.releaseId },
        networkMode,
      }),
    );
  }
  return ids;
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
