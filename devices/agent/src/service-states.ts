import type { ServiceState } from '@ferry/protocol/wire';
import { SERVICE_LABEL } from './container-spec';
import type { EngineClient } from './engine';

/** Per service: state, exit code, health, image and restart count, as the engine reports them. */
export async function serviceStates(engine: EngineClient): Promise<ServiceState[]> {
  const out: ServiceState[] = [];
  for (const c of await engine.containers(SERVICE_LABEL)) {
    const info = await engine.inspectContainer(c.Id);
    if (!info) continue;
    const health = info.State.Health?.Status;
    out.push({
      name: c.Labels[SERVICE_LABEL] ?? '?',
      state: (info.State.Restarting ? 'restarting' : info.State.Status) as ServiceState['state'],
      ...(info.State.Status === 'exited' && { exitCode: info.State.ExitCode }),
      ...((health === 'healthy' || health === 'unhealthy' || health === 'starting') && { health }),
      image: c.ImageID,
      restartCount: info.RestartCount,
      containerId: c.Id.slice(0, 12),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).slice(0, 32);
}
