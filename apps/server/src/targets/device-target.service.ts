import { Inject, Injectable, Logger } from '@nestjs/common';
import { DeviceTarget, ReleaseLayer, TargetLayer, UnsignedTarget, signTarget } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { DeltasService } from '../deltas/deltas.service';
import { DevicesService } from '../devices/devices.service';
import { FleetsService } from '../fleets/fleets.service';
import { ReleasesService } from '../releases/releases.service';
import { TargetKeysService } from '../target-keys/target-keys.service';
import { VariablesService } from '../variables/variables.service';
import { UpdatePoliciesService } from '../update-policies/update-policies.service';
import { VolumePurgesService } from '../volumes/volume-purges.service';
import { chooseDownload } from './layer-choice';

/** The part of a target that says what to run and how to download it. */
type TargetPlan = Omit<
  UnsignedTarget,
  | 'uuid'
  | 'targetVersion'
  | 'expires'
  | 'rollback'
  | 'onlineKey'
  | 'releaseTrustChain'
  | 'variables'
  | 'updatePolicy'
>;

/**
 * Answers a device's "what should I run, and how do I get it": its target release, and for each layer
 * it lacks the cheapest download it can use given the layers it reports holding, its configuration
 * variables and its update policy (windows, rate cap); the whole answer signed
 * by the server's online key with the device's target version and an expiry (docs/protocol.md
 * "Signed targets").
 */
@Injectable()
export class DeviceTargetService {
  private readonly logger = new Logger(DeviceTargetService.name);

  constructor(
    private readonly devices: DevicesService,
    private readonly releases: ReleasesService,
    private readonly deltas: DeltasService,
    private readonly keys: TargetKeysService,
    private readonly fleets: FleetsService,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
    private readonly purges: VolumePurgesService,
    private readonly variables: VariablesService,
    private readonly policies: UpdatePoliciesService,
  ) {}

  async resolve(uuid: string, have: string[]): Promise<DeviceTarget> {
    const device = await this.devices.target(uuid);
    const { current, previous } = await this.keys.signingKeys();
    const envelope = {
      uuid,
      targetVersion: device.version,
      expires: new Date(this.clock.nowMs() + this.config.targetExpirySeconds * 1000).toISOString(),
      rollback: device.rollback,
      onlineKey: current.publicKey,
      releaseTrustChain: await this.fleets.trustChain(device.fleetId),
    };
    const plan = await this.plan(uuid, device.releaseId, device.runningReleaseId, have);
    const variables = await this.variables.forDevice(uuid, device.fleetId);
    const updatePolicy = await this.policies.forTarget({ uuid, fleetId: device.fleetId, tags: device.tags });
    const unsigned: UnsignedTarget = {
      ...envelope,
      ...plan,
      variables,
      ...(updatePolicy && { updatePolicy }),
    };
    return signTarget(unsigned, previous ? [current.privateKey, previous.privateKey] : [current.privateKey]);
  }

  /** The release and how to get each layer the device lacks. */
  private async plan(
    uuid: string,
    targetReleaseId: string | null,
    runningReleaseId: string | null,
    have: string[],
  ): Promise<TargetPlan> {
    if (!targetReleaseId) return { release: null, layers: [], downloadBytes: 0, fullBytes: 0, configs: [] };
    const release = await this.releases.get(targetReleaseId);
    const volumePurges = await this.purges.forTarget(uuid, release);
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
      runningReleaseId &&
      runningReleaseId !== release.id &&
      lacking.some((l) => l.download?.kind === 'full')
    ) {
      // On demand: a device on a release nobody planned deltas from gets them built for next time.
      void this.releases
        .get(runningReleaseId)
        .then((from) => this.deltas.planBetween(from, release))
        .catch((error: Error) => this.logger.warn(`on-demand deltas for ${uuid}: ${error.message}`));
    }
    return {
      release: {
        id: release.id,
        version: release.version,
        manifest: release.manifest,
        signature: release.signature,
        ownerSignatures: release.ownerSignatures,
      },
      layers,
      downloadBytes: lacking.reduce((sum, l) => sum + (l.download?.size ?? 0), 0),
      fullBytes: lacking.reduce((sum, l) => sum + (unique.get(l.diffId)?.layer.gzipSize ?? 0), 0),
      configs: release.services.map((s) => ({ service: s.name, digest: s.configDigest })),
      ...(volumePurges.length > 0 && { volumePurges }),
    };
  }
}
