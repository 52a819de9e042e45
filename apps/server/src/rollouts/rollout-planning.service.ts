import { randomInt } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import {
  CreateRollout,
  PlannedDevice,
  Release,
  RolloutPlan,
  ValidationError,
  effectiveUpdatePolicy,
  projectDoneBy,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { DeltasService } from '../deltas/deltas.service';
import { DevicesService } from '../devices/devices.service';
import { EngineJoiner } from './rollout-engine';
import { FleetsService } from '../fleets/fleets.service';
import { ReleasesService } from '../releases/releases.service';
import {
  checkBatchSpec,
  checkStartAt,
  projectDownload,
  releaseLayers,
  selectDevices,
  strategyBatches,
} from './rollout-planner';
import { UpdatePoliciesService } from '../update-policies/update-policies.service';
import { RolloutRecord, RolloutsRepository } from './rollouts.repository';

/**
 * What a rollout will do before and while it runs: which devices in which batch, the bytes each would
 * download (projected at plan time and again as each device is told), the deltas to build for it,
 * and whether a batch should still wait for them.
 */
@Injectable()
export class RolloutPlanningService {
  private readonly logger = new Logger(RolloutPlanningService.name);

  constructor(
    private readonly rollouts: RolloutsRepository,
    private readonly fleets: FleetsService,
    private readonly releases: ReleasesService,
    private readonly devices: DevicesService,
    private readonly deltas: DeltasService,
    private readonly clock: Clock,
    private readonly policies: UpdatePoliciesService,
  ) {}

  /** The plan of a rollout: which devices, in which batch, and the bytes each would download. */
  async plan(fleetRef: string, input: CreateRollout): Promise<RolloutPlan> {
    const fleet = await this.fleets.get(fleetRef);
    const release = await this.releases.get(input.releaseId);
    if (release.fleetId !== fleet.id)
      throw new ValidationError(`release ${release.id} belongs to another fleet`, { field: 'releaseId' });
    await this.releases.requireDeployable(release);
    checkBatchSpec(input.strategy.batches);
    checkStartAt(input.strategy.startAt, this.clock.nowMs());
    const candidates = await this.devices.list({
      fleetId: fleet.id,
      limit: Number.MAX_SAFE_INTEGER,
      offset: 0,
    });
    // The seed is drawn once and kept in the plan's strategy, so the stored rollout can say how its
    // batches were drawn and a dry run's seed reproduces its plan.
    const strategy = { ...input.strategy, seed: input.strategy.seed ?? randomInt(2_147_483_647) };
    const selection = selectDevices(candidates, release.id, input.tagFilter ?? null, strategy.seed);
    const sizes = strategyBatches(input.strategy, selection.eligible.length);
    const project = await this.projector(release);
    const { entries: policies } = await this.policies.list(fleet.id);
    const now = this.clock.nowMs();
    // Devices with the same policy and download share one projection (windows are walked by the minute).
    const doneByCache = new Map<string, string | null>();
    const doneBy = (device: { uuid: string; tags: Record<string, string> }, bytes: number): string | null => {
      if (policies.length === 0) return null;
      const { sources: _sources, ...policy } = effectiveUpdatePolicy(policies, device);
      const key = `${JSON.stringify(policy)}|${bytes}`;
      if (!doneByCache.has(key)) {
        const at = projectDoneBy(policy, bytes, now);
        doneByCache.set(key, at === null ? null : new Date(at).toISOString());
      }
      return doneByCache.get(key) ?? null;
    };
    const planned: PlannedDevice[] = [];
    let batch = 1;
    let left = sizes[0] ?? 0;
    for (const device of selection.eligible) {
      while (left === 0 && batch < sizes.length) {
        batch += 1;
        left = sizes[batch - 1] ?? 0;
      }
      left -= 1;
      const projection = await project(device.releaseId);
      planned.push({
        uuid: device.uuid,
        name: device.name,
        batch,
        fromReleaseId: device.releaseId,
        online: device.online,
        ...projection,
        doneBy: doneBy(device, projection.projectedBytes),
      });
    }
    const batchDoneBy = (number: number): string | null =>
      planned
        .filter((d) => d.batch === number && d.doneBy !== null)
        .reduce<string | null>(
          (latest, d) => (latest === null || d.doneBy! > latest ? d.doneBy : latest),
          null,
        );
    return {
      fleetId: fleet.id,
      releaseId: release.id,
      releaseVersion: release.version,
      strategy,
      tagFilter: input.tagFilter ?? null,
      batches: sizes.map((size, i) => ({ number: i + 1, size, doneBy: batchDoneBy(i + 1) })),
      devices: planned,
      excluded: {
        pinned: selection.pinned,
        upToDate: selection.upToDate,
        filteredOut: selection.filteredOut,
      },
      bytes: {
        projected: planned.reduce((s, d) => s + d.projectedBytes, 0),
        full: planned.reduce((s, d) => s + d.fullBytes, 0),
      },
    };
  }

  /**
   * Devices the rollout covers now but does not list (late joiners: registered, or newly matching its
   * tag filter, since it started), in the order its seed draws them, with what each would download.
   */
  async joiners(rollout: RolloutRecord): Promise<EngineJoiner[]> {
    const newcomers = await this.rollouts.unlisted(rollout);
    if (newcomers.length === 0) return [];
    const selection = selectDevices(
      newcomers,
      rollout.releaseId,
      rollout.tagFilter,
      rollout.strategy.seed ?? 0,
    );
    if (selection.eligible.length === 0) return [];
    const project = await this.projector(await this.releases.get(rollout.releaseId));
    const joiners: EngineJoiner[] = [];
    for (const device of selection.eligible) {
      const { projectedBytes, fullBytes } = await project(device.releaseId);
      joiners.push({
        uuid: device.uuid,
        name: device.name,
        fromReleaseId: device.releaseId,
        projectedBytes,
        fullBytes,
      });
    }
    return joiners;
  }

  /**
   * What a device running a given release would download for `release`, as the target endpoint would
   * answer now; devices on the same release download the same, so each is projected once.
   */
  private async projector(
    release: Release,
  ): Promise<(fromId: string | null) => Promise<ReturnType<typeof projectDownload>>> {
    const deltas = await this.deltas.listForRelease(release.id);
    const fromReleases = new Map<string, Release | null>();
    const projections = new Map<string, ReturnType<typeof projectDownload>>();
    return async (fromId) => {
      let projection = projections.get(fromId ?? '');
      if (!projection) {
        const from = fromId ? await this.release(fromId, fromReleases) : null;
        projection = projectDownload(from, release, deltas);
        projections.set(fromId ?? '', projection);
      }
      return projection;
    };
  }

  /** Asks for the deltas from every release the covered devices run (built once per base→target pair). */
  async planDeltas(plan: RolloutPlan): Promise<void> {
    const target = await this.releases.get(plan.releaseId);
    const froms = new Set(plan.devices.map((d) => d.fromReleaseId).filter((id): id is string => id !== null));
    for (const id of froms) {
      try {
        const from = await this.releases.get(id);
        if (releaseLayers(target).some((l) => !releaseLayers(from).some((f) => f.diffId === l.diffId)))
          await this.deltas.planBetween(from, target);
      } catch (error) {
        this.logger.warn(`deltas from release ${id} not planned: ${(error as Error).message}`);
      }
    }
  }

  /** Whether deltas of the release are still queued or building, when the strategy waits for them. */
  async deltasPending(rollout: RolloutRecord): Promise<boolean> {
    if ((rollout.strategy.waitForDeltasSeconds ?? 0) <= 0 || rollout.state !== 'running') return false;
    const deltas = await this.deltas.listForRelease(rollout.releaseId);
    return deltas.some((d) => d.state === 'queued' || d.state === 'building');
  }

  /**
   * Projects again, as the devices are told, what they will download: deltas built since the plan
   * (a batch may have waited for them) make it smaller than planned.
   */
  async reproject(rolloutId: string, release: Release, uuids: string[]): Promise<void> {
    const deltas = await this.deltas.listForRelease(release.id);
    const byFrom = new Map<string | null, string[]>();
    for (const [uuid, from] of await this.rollouts.fromReleasesOf(rolloutId, uuids)) {
      const list = byFrom.get(from);
      if (list) list.push(uuid);
      else byFrom.set(from, [uuid]);
    }
    const fromReleases = new Map<string, Release | null>();
    for (const [fromId, members] of byFrom) {
      const from = fromId ? await this.release(fromId, fromReleases) : null;
      await this.rollouts.setProjected(
        rolloutId,
        members,
        projectDownload(from, release, deltas).projectedBytes,
      );
    }
    await this.rollouts.refreshProjectedTotal(rolloutId);
  }

  /** A release by id, once per plan; null when it is gone (devices may run a deleted release). */
  private async release(id: string, cache: Map<string, Release | null>): Promise<Release | null> {
    if (!cache.has(id)) cache.set(id, await this.releases.get(id).catch(() => null));
    return cache.get(id) ?? null;
  }
}
