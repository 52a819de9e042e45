import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceStatus, DeviceTarget, TargetLayer, UpdatePolicy } from '@ferry/protocol/wire';
import {
  MAINTENANCE_WAIT,
  NO_UPDATE_POLICY,
  insideAnyWindow,
  nextOpening,
  updateStrategyOf,
} from '@ferry/protocol/wire';
import { DownloadPacer } from './download-pacer';
import { DeltaError } from '@ferry/delta/decoder';
import type { AgentConfig } from './config';
import {
  createServiceContainer,
  ensureAppResources,
  managedContainers,
  planServices,
  recreateBody,
  releaseSpecs,
  waitDependency,
  waitHealthy,
  type ServicePlan,
} from './containers';
import type { ContainerInspect } from './engine';
import type { ReleaseRef } from './journal';
import { handoverTimeoutMsOf, startOrder } from '@ferry/protocol/wire';
import { Downloader, fetchSmallBlob, sleep } from './downloader';
import type { EngineClient } from './engine';
import { AgentError, HealthCheckError, WindowWaitError, isDiskFull } from './errors';
import { heldChains, imageTag, layersNeedingBytes, loadServiceImage } from './image-archive';
import type { Journal, UpdateRecord } from './journal';
import {
  LayerDigestError,
  exists,
  exportBaseLayers,
  layerPath,
  rebuildFromDelta,
  rebuildFromGzip,
} from './layers';
import type { DownloadLedger } from './ledger';
import type { Logger } from './log';
import { preflight } from './preflight';
import type { Reporter } from './reporter';
import type { ServerApi } from './server-api';
import { existsSync } from 'node:fs';

type Release = NonNullable<DeviceTarget['release']>;

export interface UpdaterDeps {
  config: AgentConfig;
  engine: EngineClient;
  api: ServerApi;
  journal: Journal;
  ledger: DownloadLedger;
  reporter: Reporter;
  log: Logger;
}

/** How one layer is fetched in this update. */
type Choice =
  | { kind: 'delta'; digest: string; size: number; bases: string[] }
  | { kind: 'full'; digest: string; size: number };

/** Whether two plans fetch the same bytes for the same layers. */
function sameLayerPlan(a: TargetLayer[], b: TargetLayer[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Decoder memory (three brotli windows, read windows, output chunk) plus the agent itself. */
const DECODE_MEMORY = 48 * 1024 * 1024;

/**
 * Carries one update from download to commit, journaling every phase before acting on it.
 */
export class Updater {
  private readonly downloads: string;
  private readonly layers: string;
  private readonly downloader: Downloader;

  constructor(private readonly deps: UpdaterDeps) {
    this.downloads = join(deps.config.dataDir, 'downloads');
    this.layers = join(deps.config.dataDir, 'layers');
    this.downloader = new Downloader(deps.api, this.downloads, deps.ledger, deps.log);
  }

  private report(
    status: DeviceStatus,
    extra: { bytesDone?: number; bytesTotal?: number; error?: string } = {},
  ): void {
    this.deps.reporter.report({
      status,
      releaseId: this.deps.journal.state.update?.releaseId ?? null,
      ...this.fallbackNote(),
      ...extra,
    });
  }

  /**
   * Every report of an update where a delta fell back to its full layer says so (balena-engine
   * #1513: never a silent substitution).
   */
  private fallbackNote(): { error?: string } {
    const fallbacks = Object.entries(this.deps.journal.state.update?.fallbacks ?? {});
    if (fallbacks.length === 0) return {};
    return {
      error:
        `download.fallback: ${fallbacks.map(([d, why]) => `${d.slice(0, 19)}… ${why}`).join('; ')}`.slice(
          0,
          2000,
        ),
    };
  }

  /**
   * Finishes or undoes what a killed agent left: an interrupted swap is undone (the new release's
   * containers removed, the old ones started) so that it can be done again from the start.
   */
  async recover(): Promise<void> {
    const { journal, engine, log } = this.deps;
    const update = journal.state.update;
    if (!update) return;
    if (update.phase === 'swapping' && update.swap) {
      log.info('undoing an interrupted swap', { releaseId: update.releaseId, step: update.swap.step });
      await this.removeNewContainers(update);
      for (const id of update.swap.oldContainers) await engine.startContainer(id).catch(() => undefined);
      await journal.updateRecord((u) => delete u.swap);
    } else if (update.phase === 'committing') await this.commit();
    else if (update.phase === 'rolling_back')
      await this.rollback(update.rollbackReason ?? 'interrupted rollback');
  }

  /**
   * Runs (or resumes) the update to `release` under `policy`: downloads only inside its download
   * windows and at most at its rate, and stops or swaps containers only inside its maintenance
   * windows; outside one it throws {@link WindowWaitError}, keeping what it has done so far.
   */
  async run(release: Release, plan: TargetLayer[], policy: UpdatePolicy = NO_UPDATE_POLICY): Promise<void> {
    const { journal } = this.deps;
    const existing = journal.state.update;
    if (!existing || existing.releaseId !== release.id) {
      if (
        existing &&
        existing.phase !== 'downloading' &&
        existing.phase !== 'rebuilding' &&
        existing.phase !== 'loading'
      )
        throw new AgentError(`update to ${existing.releaseId} is in phase ${existing.phase}`, 'BUSY');
      await this.preflight(plan);
      await journal.write((s) => {
        s.update = {
          releaseId: release.id,
          version: release.version,
          manifest: release.manifest,
          signature: release.signature,
          layers: plan,
          phase: 'downloading',
          fallbacks: {},
          startedAt: new Date().toISOString(),
        };
      });
    }
    const update = (): UpdateRecord => journal.state.update as UpdateRecord;
    if (update().phase === 'downloading' && !sameLayerPlan(update().layers, plan))
      // Nothing is rebuilt yet: the fresh plan (against the layers the engine holds now) replaces the
      // journaled one; finished and partial blobs stay in the ledger under their digests.
      await journal.updateRecord((u) => (u.layers = plan));
    if (update().phase === 'downloading' && !update().early) {
      // Stopping containers before the download is installing: it waits for the maintenance window.
      const early = update().manifest.services.some((s) =>
        ['kill-then-download', 'delete-then-download'].includes(updateStrategyOf(s.config)),
      );
      if (early) this.checkMaintenanceWindow(policy);
      await this.stopEarly();
    }
    if (update().phase === 'downloading') {
      await this.preflight(update().layers);
      const pacer = new DownloadPacer(policy, () => Date.now());
      pacer.checkWindow();
      await this.download(pacer);
      await journal.updateRecord((u) => (u.phase = 'rebuilding'));
    }
    if (update().phase === 'rebuilding') {
      await this.rebuild();
      await journal.updateRecord((u) => (u.phase = 'loading'));
    }
    if (update().phase === 'loading') {
      this.report('installing');
      await this.load();
      this.report('downloaded');
      // Downloaded and loaded ("download now, install later"): the swap waits for the window.
      this.checkMaintenanceWindow(policy);
      await journal.updateRecord((u) => (u.phase = 'swapping'));
    }
    if (update().phase === 'swapping') await this.swap();
    if (update().phase === 'rolling_back')
      return this.rollback(update().rollbackReason ?? 'health check failed');
    if (update().phase === 'committing') await this.commit();
  }

  /** Throws {@link WindowWaitError} outside the policy's maintenance windows. */
  private checkMaintenanceWindow(policy: UpdatePolicy): void {
    const now = Date.now();
    if (!insideAnyWindow(policy.maintenanceWindows, now))
      throw new WindowWaitError(MAINTENANCE_WAIT, nextOpening(policy.maintenanceWindows, now));
  }

  /** Disk for downloads, rebuilt layers and exported bases; memory for the decoder. */
  private async preflight(plan: TargetLayer[]): Promise<void> {
    let disk = this.deps.config.diskReserveBytes;
    const bases = new Set<string>();
    for (const layer of plan) {
      if (!layer.download) continue;
      if (await exists(layerPath(this.layers, layer.diffId))) continue;
      const record = this.deps.ledger.get(layer.download.digest);
      disk += layer.download.size - (record.complete ? layer.download.size : record.done) + layer.size;
      if (layer.download.kind === 'delta') for (const base of layer.download.bases) bases.add(base);
    }
    for (const base of bases) {
      const size = plan.find((l) => l.diffId === base)?.size;
      if (size !== undefined && !(await exists(layerPath(this.layers, base)))) disk += size;
    }
    await mkdir(this.deps.config.dataDir, { recursive: true });
    await preflight(this.deps.config.dataDir, {
      diskBytes: disk,
      memoryBytes: this.deps.config.minFreeMemoryBytes + DECODE_MEMORY / 4,
    });
  }

  private async choices(): Promise<Map<string, Choice>> {
    const update = this.deps.journal.state.update as UpdateRecord;
    const held = await this.deps.engine.layerDiffIds();
    const out = new Map<string, Choice>();
    for (const layer of update.layers) {
      const d = layer.download;
      if (!d) continue;
      if (d.kind === 'full') out.set(layer.diffId, d);
      else if (update.fallbacks[layer.diffId] !== undefined)
        out.set(layer.diffId, { kind: 'full', ...d.fallback });
      else if (!d.bases.every((b) => held.has(b))) {
        // Never apply a delta to a base the engine does not hold (balena-engine #444).
        await this.fallback(layer.diffId, 'the engine does not hold every base of the delta');
        out.set(layer.diffId, { kind: 'full', ...d.fallback });
      } else out.set(layer.diffId, { kind: 'delta', digest: d.digest, size: d.size, bases: d.bases });
    }
    return out;
  }

  private async fallback(diffId: string, reason: string): Promise<void> {
    this.deps.log.warn('download.fallback', { diffId, reason });
    await this.deps.journal.updateRecord((u) => (u.fallbacks[diffId] = reason));
  }

  /** Uncompressed size of a layer of the update, as the signed target lists it. */
  private layerSize(diffId: string): number {
    const layer = (this.deps.journal.state.update as UpdateRecord).layers.find((l) => l.diffId === diffId);
    if (!layer) throw new AgentError(`no layer ${diffId} in the update`, 'PLAN');
    return layer.size;
  }

  /**
   * The gzip'd full layer of `diffId`: the target's full download or delta fallback, else the gzip copy
   * the signed manifest names for every layer (a layer the target offered no download for because the
   * engine held it then).
   */
  private fullOf(diffId: string): { digest: string; size: number } {
    const update = this.deps.journal.state.update as UpdateRecord;
    const d = update.layers.find((l) => l.diffId === diffId)?.download;
    if (d) return d.kind === 'full' ? d : d.fallback;
    for (const service of update.manifest.services)
      for (const layer of service.layers)
        if (layer.diffId === diffId) return { digest: layer.gzipDigest, size: layer.gzipSize };
    throw new AgentError(`no download for ${diffId}`, 'PLAN');
  }

  /** Downloads the gzip'd full layer of `diffId` and unpacks it into place, checked against its diffID. */
  private async unpackFull(diffId: string, onBytes: (n: number) => void): Promise<void> {
    const { config } = this.deps;
    const full = this.fullOf(diffId);
    const gzip = await this.downloader.fetch(full.digest, full.size, {
      attempts: config.downloadAttempts,
      retryBaseMs: config.retryBaseMs,
      onBytes,
    });
    try {
      await rebuildFromGzip(gzip, diffId, layerPath(this.layers, diffId));
    } catch (error) {
      if (error instanceof LayerDigestError) await this.deps.ledger.reset(full.digest);
      throw error;
    }
    this.deps.log.info('layer unpacked from full download', { diffId });
  }

  /**
   * Puts the tars of `diffIds` (layers the new images need whose bytes the engine was believed to hold)
   * in the layers directory: exported from the engine, or, for a layer the engine lost since the target
   * was computed (an image removed, a load cut short by a power cut), downloaded in full.
   */
  private async provideLayers(diffIds: Iterable<string>): Promise<void> {
    const wanted = new Set<string>();
    for (const diffId of diffIds) if (!(await exists(layerPath(this.layers, diffId)))) wanted.add(diffId);
    if (wanted.size === 0) return;
    for (const diffId of await exportBaseLayers(this.deps.engine, wanted, this.layers)) {
      await this.fallback(diffId, 'the engine lost the layer');
      await this.unpackFull(diffId, () => undefined);
    }
  }

  private progress(): { add: (n: number) => void; grow: (n: number) => void } {
    let done = 0;
    let total = 0;
    const update = this.deps.journal.state.update as UpdateRecord;
    for (const layer of update.layers) {
      const d = layer.download;
      if (!d) continue;
      const choice = d.kind === 'delta' && update.fallbacks[layer.diffId] !== undefined ? d.fallback : d;
      total += choice.size;
      const record = this.deps.ledger.get(choice.digest);
      done += record.complete ? choice.size : record.done;
    }
    const send = (): void =>
      this.report('downloading', { bytesDone: Math.min(done, total), bytesTotal: total });
    send();
    return {
      add: (n) => {
        done += n;
        send();
      },
      grow: (n) => {
        total += n;
        send();
      },
    };
  }

  /** Downloads every delta or full layer, 3 at a time; a delta that cannot be fetched falls back. */
  private async download(pacer: DownloadPacer): Promise<void> {
    const { config } = this.deps;
    const choices = [...(await this.choices()).entries()];
    const pending: [string, Choice][] = [];
    for (const entry of choices) if (!(await exists(layerPath(this.layers, entry[0])))) pending.push(entry);
    const progress = this.progress();
    const options = {
      attempts: config.downloadAttempts,
      retryBaseMs: config.retryBaseMs,
      onBytes: progress.add,
      pace: (added: number) => pacer.pace(added),
    };
    const worker = async (): Promise<void> => {
      for (let next = pending.shift(); next; next = pending.shift()) {
        pacer.checkWindow();
        const [diffId, choice] = next;
        try {
          await this.downloader.fetch(choice.digest, choice.size, options);
        } catch (error) {
          if (choice.kind !== 'delta' || isDiskFull(error) || error instanceof WindowWaitError) throw error;
          await this.fallback(diffId, `delta download failed: ${(error as Error).message}`);
          const full = this.fullOf(diffId);
          progress.grow(full.size);
          await this.downloader.fetch(full.digest, full.size, options);
        }
      }
    };
    await Promise.all(Array.from({ length: config.downloadConcurrency }, worker));
  }

  /**
   * Rebuilds every new layer (delta against exported bases, or gunzip), each checked against its diffID,
   * and provides the held layers the new images need in the archive.
   */
  private async rebuild(): Promise<void> {
    const { engine, journal, config } = this.deps;
    const update = journal.state.update as UpdateRecord;
    const choices = await this.choices();
    const bases = new Set<string>();
    const todo: string[] = [];
    for (const [diffId, choice] of choices) {
      if (await exists(layerPath(this.layers, diffId))) continue;
      todo.push(diffId);
      if (choice.kind === 'delta') for (const base of choice.bases) bases.add(base);
    }
    // Layers the engine holds but not on the chain of the new image must travel in the archive too.
    const held = new Set<string>();
    const chains = await heldChains(engine);
    for (const service of update.manifest.services)
      for (const diffId of layersNeedingBytes(service, chains)) if (!choices.has(diffId)) held.add(diffId);
    const missing = await exportBaseLayers(engine, new Set([...bases, ...held]), this.layers);
    const options = {
      attempts: config.downloadAttempts,
      retryBaseMs: config.retryBaseMs,
      onBytes: (_n: number): void => undefined,
    };
    for (const diffId of todo) {
      const choice = choices.get(diffId) as Choice;
      const out = layerPath(this.layers, diffId);
      if (choice.kind === 'delta') {
        try {
          const absent = choice.bases.filter((b) => missing.has(b));
          if (absent.length > 0)
            throw new AgentError(
              `base layers not exported by the engine: ${absent.join(', ')}`,
              'BASE_MISSING',
            );
          const delta = await this.downloader.fetch(choice.digest, choice.size, options);
          await rebuildFromDelta(
            delta,
            choice.bases.map((b) => layerPath(this.layers, b)),
            out,
            { diffId, size: this.layerSize(diffId) },
          );
          this.deps.log.info('layer rebuilt from delta', { diffId, delta: choice.digest });
          continue;
        } catch (error) {
          if (isDiskFull(error)) throw error;
          if (!(error instanceof DeltaError || error instanceof AgentError)) throw error;
          await this.fallback(diffId, `delta failed to apply: ${(error as Error).message}`);
        }
      }
      await this.unpackFull(diffId, choice.kind === 'delta' ? this.progress().add : options.onBytes);
    }
    await this.provideLayers(held);
  }

  /** Loads every service image the engine lacks, then checks it. */
  private async load(): Promise<void> {
    const { engine, api } = this.deps;
    const update = this.deps.journal.state.update as UpdateRecord;
    for (const service of update.manifest.services) {
      const image = await engine.image(service.configDigest);
      const expected = service.layers.map((l) => l.diffId).join(',');
      if (image && (image.RootFS?.Layers ?? []).join(',') === expected) continue;
      const config = await fetchSmallBlob(api, this.downloads, service.configDigest);
      const needed = layersNeedingBytes(service, await heldChains(engine));
      await this.provideLayers(needed);
      await loadServiceImage(engine, service, imageTag(service.name, update.version), config, needed, (d) =>
        layerPath(this.layers, d),
      );
      this.deps.log.info('image loaded', {
        service: service.name,
        image: service.configDigest,
        layersSent: needed.length,
      });
    }
  }

  /** Removes the containers this update created (by the names it planned, so a half-journaled create too). */
  private async removeNewContainers(update: UpdateRecord): Promise<void> {
    const { engine } = this.deps;
    for (const id of update.swap?.newContainers ?? []) await engine.removeContainer(id);
    for (const p of update.swap?.plan ?? []) if (p.newName) await engine.removeContainer(p.newName);
  }

  private specs(manifest: UpdateRecord['manifest']): ReturnType<typeof releaseSpecs> {
    return releaseSpecs(manifest, this.deps.journal.state.variables, this.deps.config.networkMode);
  }

  /**
   * kill-then-download and delete-then-download (docs/compose.md): the old containers of the services
   * that change stop (or go, their create body journaled first so a rollback can recreate them) before
   * the download starts, to free memory or disk.
   */
  private async stopEarly(): Promise<void> {
    const { engine, journal, log } = this.deps;
    const update = journal.state.update as UpdateRecord;
    const plan = await planServices(engine, update.manifest, this.specs(update.manifest));
    const early: NonNullable<UpdateRecord['early']> = { stopped: [], deleted: [] };
    for (const p of plan) {
      if (!p.oldId || (p.action !== 'replace' && p.action !== 'remove')) continue;
      if (p.strategy === 'kill-then-download') early.stopped.push(p.oldId);
      if (p.strategy === 'delete-then-download') {
        const info = (await engine.inspectContainer(p.oldId)) as
          (ContainerInspect & Record<string, unknown>) | null;
        if (info)
          early.deleted.push({
            service: p.service,
            name: (info.Name ?? '').replace(/^\//, ''),
            body: recreateBody(info),
          });
      }
    }
    await journal.updateRecord((u) => (u.early = early));
    for (const id of early.stopped) await engine.stopContainer(id, this.deps.config.stopTimeoutSeconds);
    for (const d of early.deleted) {
      const old = plan.find((p) => p.service === d.service)?.oldId;
      if (old) await engine.removeContainer(old);
    }
    if (early.stopped.length + early.deleted.length > 0)
      log.info('stopped before download', { stopped: early.stopped.length, deleted: early.deleted.length });
  }

  /**
   * Changes only what changed: services whose container has the same configuration hash keep running
   * untouched; the others get new containers, started in depends_on order (waiting for
   * service_healthy dependencies), then health-checked. The outcome is journaled as commit or rollback.
   */
  private async swap(): Promise<void> {
    const { engine, journal, config, log } = this.deps;
    let update = journal.state.update as UpdateRecord;
    if (!update.swap) {
      const plan = await planServices(engine, update.manifest, this.specs(update.manifest));
      const old = plan
        .filter((p) => p.action === 'replace' || p.action === 'remove')
        .map((p) => p.oldId as string);
      const running = new Set(
        (await managedContainers(engine)).filter((c) => c.State === 'running').map((c) => c.Id),
      );
      if (old.some((id) => running.has(id))) await this.waitForLock();
      const variablesVersion = journal.state.variables?.version ?? null;
      await journal.updateRecord((u) => {
        u.swap = { step: 'create', oldContainers: old, newContainers: [], plan };
        u.variablesVersion = variablesVersion;
      });
      log.info('update plan', {
        services: plan
          .map((p) => `${p.service}:${p.action}${p.action === 'keep' ? '' : `(${p.strategy})`}`)
          .join(' '),
      });
    }
    update = journal.state.update as UpdateRecord;
    const swap = () => (journal.state.update as UpdateRecord).swap as NonNullable<UpdateRecord['swap']>;
    const plan = (): ServicePlan[] => swap().plan ?? [];
    if (swap().step === 'create') {
      this.report('installing');
      await ensureAppResources(engine, update.manifest);
      const specs = this.specs(update.manifest);
      const created = new Map<string, string>();
      const containerOf = (service: string): string | undefined => {
        const p = plan().find((x) => x.service === service);
        return created.get(service) ?? p?.oldId;
      };
      for (const spec of specs) {
        const p = plan().find((x) => x.service === spec.service);
        if (!p || (p.action !== 'replace' && p.action !== 'create')) continue;
        created.set(spec.service, await createServiceContainer(engine, spec, containerOf));
      }
      await journal.updateRecord((u) => {
        const sw = u.swap as NonNullable<UpdateRecord['swap']>;
        for (const p of sw.plan ?? []) {
          const id = created.get(p.service);
          if (id) p.newId = id;
        }
        sw.newContainers = [...created.values()];
        sw.step = 'stop_old';
      });
    }
    if (swap().step === 'stop_old') {
      // Reverse start order; hand-over services keep their old container until the new one is healthy.
      for (const p of [...plan()].reverse())
        if (p.oldId && (p.action === 'replace' || p.action === 'remove') && p.strategy !== 'hand-over')
          await engine.stopContainer(p.oldId, config.stopTimeoutSeconds);
      await journal.updateRecord((u) => ((u.swap as { step: string }).step = 'start_new'));
    }
    if (swap().step === 'start_new') {
      this.report('starting');
      try {
        await this.startInOrder(update.manifest, plan());
      } catch (error) {
        if (error instanceof HealthCheckError) return this.markRollback(error.message);
        return this.markRollback(`containers failed to start: ${(error as Error).message}`);
      }
      await journal.updateRecord((u) => ((u.swap as { step: string }).step = 'health'));
    }
    if (swap().step === 'health') {
      try {
        await this.handOver(plan());
        await waitHealthy(engine, swap().newContainers, config.healthGraceMs, config.healthTimeoutMs);
      } catch (error) {
        if (!(error instanceof HealthCheckError)) throw error;
        log.warn('health check failed', { error: error.message });
        return this.markRollback(error.message);
      }
      await journal.updateRecord((u) => (u.phase = 'committing'));
    }
  }

  /** Starts new containers in depends_on order, each after its dependencies are ready as asked. */
  private async startInOrder(manifest: UpdateRecord['manifest'], plan: ServicePlan[]): Promise<void> {
    const { engine, config } = this.deps;
    const idOf = (service: string): string | undefined => {
      const p = plan.find((x) => x.service === service);
      return p?.newId ?? p?.oldId;
    };
    for (const service of startOrder(manifest.services)) {
      const p = plan.find((x) => x.service === service.name);
      if (!p?.newId) continue;
      for (const [dep, { condition }] of Object.entries(service.config?.dependsOn ?? {})) {
        const depId = idOf(dep);
        if (depId && condition !== 'service_started')
          await waitDependency(engine, depId, condition, Math.max(config.healthTimeoutMs, 10_000));
      }
      await engine.startContainer(p.newId);
    }
  }

  /** hand-over: the old container runs until the new one is healthy or the hand-over timeout passes. */
  private async handOver(plan: ServicePlan[]): Promise<void> {
    const { engine, config } = this.deps;
    const manifest = (this.deps.journal.state.update as UpdateRecord).manifest;
    for (const p of plan) {
      if (p.strategy !== 'hand-over' || !p.oldId || !p.newId) continue;
      const timeout = handoverTimeoutMsOf(manifest.services.find((s) => s.name === p.service)?.config);
      await Promise.race([
        waitHealthy(engine, [p.newId], config.healthGraceMs, timeout).catch(() => undefined),
        sleep(timeout),
      ]);
      await engine.stopContainer(p.oldId, config.stopTimeoutSeconds);
    }
  }

  /**
   * New configuration variables for the running release: recreates the services whose effective
   * configuration changed, as an update of the same release (journaled, health-checked, rolled back).
   */
  async reconfigure(current: ReleaseRef): Promise<boolean> {
    const { engine, journal } = this.deps;
    const variables = journal.state.variables;
    if (!variables || journal.state.rejectedVariables === variables.version) return false;
    const plan = await planServices(engine, current.manifest, this.specs(current.manifest));
    if (plan.every((p) => p.action === 'keep')) {
      if (journal.state.appliedVariables !== variables.version)
        await journal.write((s) => (s.appliedVariables = variables.version));
      return false;
    }
    await journal.write((s) => {
      s.update = {
        releaseId: current.releaseId,
        version: current.version,
        manifest: current.manifest,
        signature: '',
        layers: [],
        phase: 'swapping',
        fallbacks: {},
        startedAt: new Date().toISOString(),
        reconfigure: true,
      };
    });
    await this.swap();
    const phase = journal.state.update?.phase;
    if (phase === 'rolling_back')
      await this.rollback(journal.state.update?.rollbackReason ?? 'health check failed');
    else if (phase === 'committing') await this.commit();
    return true;
  }

  private async markRollback(reason: string): Promise<void> {
    await this.deps.journal.updateRecord((u) => {
      u.phase = 'rolling_back';
      u.rollbackReason = reason;
    });
  }

  /** Holds the swap while the application holds its update lock; downloads are already done. */
  private async waitForLock(): Promise<void> {
    const lock = this.deps.config.updateLockPath;
    if (!existsSync(lock)) return;
    this.report('deferred', { error: `update lock held (${lock})` });
    this.deps.log.info('update lock held, waiting', { lock });
    while (existsSync(lock)) await sleep(1000);
  }

  /** Back to the old containers, with their old configuration and the same volumes. */
  private async rollback(reason: string): Promise<void> {
    const { engine, journal } = this.deps;
    const update = journal.state.update as UpdateRecord;
    await this.removeNewContainers(update);
    for (const d of update.early?.deleted ?? []) {
      await engine.removeContainer(d.name);
      const id = await engine
        .createContainer(d.name, d.body as Parameters<typeof engine.createContainer>[1])
        .catch(() => null);
      if (id) await engine.startContainer(id).catch(() => undefined);
    }
    const old = new Set([...(update.swap?.oldContainers ?? []), ...(update.early?.stopped ?? [])]);
    for (const id of old) await engine.startContainer(id).catch(() => undefined);
    await journal.write((s) => {
      if (update.reconfigure) s.rejectedVariables = update.variablesVersion ?? null;
      else s.rejected = { releaseId: update.releaseId, status: 'rolled_back', reason };
      s.update = null;
    });
    this.deps.reporter.report({
      status: update.reconfigure ? 'running' : 'rolled_back',
      releaseId: update.releaseId,
      error: update.reconfigure ? `configuration variables rolled back: ${reason}` : reason,
    });
  }

  /** The new release is healthy: old containers go, the previous image stays as the next delta base. */
  private async commit(): Promise<void> {
    const { engine, journal } = this.deps;
    const update = journal.state.update as UpdateRecord;
    for (const id of update.swap?.oldContainers ?? []) await engine.removeContainer(id);
    const ref = { releaseId: update.releaseId, version: update.version, manifest: update.manifest };
    const note = this.fallbackNote();
    await journal.write((s) => {
      if (s.current && s.current.releaseId !== ref.releaseId) s.previous = s.current;
      s.current = ref;
      if (!update.reconfigure) s.rejected = null;
      s.appliedVariables = update.variablesVersion ?? s.appliedVariables ?? null;
      s.update = null;
    });
    this.deps.reporter.report({ status: 'running', releaseId: update.releaseId, ...note });
    await this.prune();
  }

  /** Removes images of releases older than the previous one, and the update's scratch files. */
  async prune(): Promise<void> {
    const { engine, journal, log } = this.deps;
    const keep = new Set<string>();
    for (const ref of [journal.state.current, journal.state.previous])
      for (const s of ref?.manifest.services ?? []) keep.add(s.configDigest);
    const inUse = new Set((await managedContainers(engine)).map((c) => c.ImageID));
    for (const image of await engine.images()) {
      const ours = (image.RepoTags ?? []).some((t) =>
        /^(docker\.io\/(library\/)?)?ferry-[^/]+:v\d+$/.test(t),
      );
      if (ours && !keep.has(image.Id) && !inUse.has(image.Id)) {
        log.info('removing old image', { image: image.Id, tags: image.RepoTags });
        await engine
          .removeImage(image.Id)
          .catch((error: Error) => log.warn('image not removed', { error: error.message }));
      }
    }
    for (const dir of [this.downloads, this.layers]) {
      for (const name of await readdir(dir).catch(() => [] as string[]))
        await rm(join(dir, name), { force: true, recursive: true });
    }
  }
}
