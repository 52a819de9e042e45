import { Injectable, Logger } from '@nestjs/common';
import { DeviceTarget, ReleaseLayer, TargetLayer } from '@ferry/protocol';
import { DeltasService } from '../deltas/deltas.service';
import { DevicesService } from '../devices/devices.service';
import { ReleasesService } from '../releases/releases.service';
import { chooseDownload } from './layer-choice';

/**
 * Answers a device's "what should I run, and how do I get it": its target release, signed, and for
 * each layer it lacks the cheapest download it can use given the layers it reports holding.
 */
@Injectable()
export class DeviceTargetService {
  private readonly logger = new Logger(DeviceTargetService.name);

  constructor(
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly deltas: DeltasService,
  ) {}

  async resolve(uuid: string, have: string[]): Promise<DeviceTarget> {
    const device = await this.devices.get(uuid);
    if (!device.targetReleaseId)
      return { release: null, layers: [], downloadBytes: 0, fullBytes: 0, configs: [] };
    const release = await this.releases.get(device.targetReleaseId);
    const held = new Set(have);
    const unique = new Map<string, { service: string; layer: ReleaseLayer }>();
    for (const service of release.services) {
      for (const layer of service.layers)
        if (!unique.has(layer.diffId)) unique.set(layer.diffId, { service: service.name, layer });
    }
    const missing = [...unique.values()]
      .filter(({ layer }) => !held.has(layer.diffId))
      .map(({ layer }) => layer.diffId);
    const deltas = await this.deltas.forTargets(missing);
    const layers: TargetLayer[] = [...unique.values()].map(({ service, layer }) => ({
      service,
      diffId: layer.diffId,
      size: layer.size,
      download: held.has(layer.diffId) ? null : chooseDownload(layer, deltas, held),
    }));
    const lacking = layers.filter((l) => l.download !== null);
    if (
      device.releaseId &&
      device.releaseId !== release.id &&
      lacking.some((l) => l.download?.kind === 'full')
    ) {
      // On demand: a device on a release nobody planned deltas from gets them built for next time.
      void this.releases
        .get(device.releaseId)
        .then((from) => this.deltas.planBetween(from, release))
        .catch((error: Error) => this.logger.warn(`on-demand deltas for ${uuid}: ${error.message}`));
    }
    return {
      release: {
        id: release.id,
        version: release.version,
        manifest: release.manifest,
        signature: release.signature,
      },
      layers,
      downloadBytes: lacking.reduce((sum, l) => sum + (l.download?.size ?? 0), 0),
      fullBytes: lacking.reduce((sum, l) => sum + (unique.get(l.diffId)?.layer.gzipSize ?? 0), 0),
      configs: release.services.map((s) => ({ service: s.name, digest: s.configDigest })),
    };
  }
}
