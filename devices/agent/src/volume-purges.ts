import type { ReleaseManifest } from '@ferry/protocol/wire';
import { APP_LABEL, VOLUME_LABEL } from './container-spec';
import type { EngineClient } from './engine';
import type { Logger } from './log';
import type { ServerApi } from './server-api';

/**
 * Carries out the volume purges an operator asked for (`volumePurges` of the target; docs/compose.md
 * "Volumes"). Only a volume labelled as Ferry's, of this app (`io.ferry.app`) and with that compose name
 * (`io.ferry.volume`) is removed; one that a release the device runs or installs declares is refused,
 * as is one a container still uses (the engine refuses it). Every purge is answered; an answer that does
 * not reach the server is given again on the next reconciliation (the purge stays pending there).
 */
export async function purgeVolumes(
  deps: { engine: EngineClient; api: ServerApi; log: Logger },
  volumes: string[],
  manifests: ReleaseManifest[],
): Promise<void> {
  const { engine, api, log } = deps;
  const app = manifests.find((m) => m.app)?.app?.name;
  const held = await engine.volumes(APP_LABEL);
  for (const volume of volumes) {
    let outcome: { outcome: 'purged' | 'refused'; error?: string };
    const user = manifests.find((m) => Object.hasOwn(m.app?.volumes ?? {}, volume));
    if (user) outcome = { outcome: 'refused', error: `release v${user.version} on the device declares it` };
    else if (!app) outcome = { outcome: 'refused', error: 'no release on the device names its app' };
    else {
      const found = held.find((v) => v.Labels?.[APP_LABEL] === app && v.Labels?.[VOLUME_LABEL] === volume);
      try {
        if (found) await engine.removeVolume(found.Name);
        outcome = { outcome: 'purged' };
        log.info('volume purged', { volume, name: found?.Name ?? null });
      } catch (error) {
        outcome = { outcome: 'refused', error: (error as Error).message.slice(0, 1000) };
      }
    }
    if (outcome.outcome === 'refused') log.warn('volume purge refused', { volume, error: outcome.error });
    await api
      .volumePurged(volume, outcome)
      .catch((error: Error) => log.warn('volume purge answer not sent', { volume, error: error.message }));
  }
}
