import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceTarget, TargetLayer } from '../../../libs/protocol/src/device-target';
import type { DeviceStatus } from '../../../libs/protocol/src/messages';
import { DeltaError } from '../../../libs/delta/src/delta/errors';
import type { AgentConfig } from './config';
import { RELEASE_LABEL, createReleaseContainers, managedContainers, waitHealthy } from './containers';
import { Downloader, fetchSmallBlob, sleep } from './downloader';
import type { EngineClient } from './engine';
import { AgentError, HealthCheckError, isDiskFull } from './errors';
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
      await this.removeReleaseContainers(update.releaseId);
      for (const id of update.swap.oldContainers) await engine.startContainer(id).catch(() => undefined);
      await journal.updateRecord((u) => delete u.swap);
    } else if (update.phase === 'committing') await this.commit();
    else if (update.phase === 'rolling_back')
      await this.rollback(update.rollbackReason ?? 'interrupted rollback');
  }

  /** Runs (or resumes) the update to `release`. */
  async run(release: Release, plan: TargetLayer[]): Promise<void> {
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
    if (update().phase === 'downloading') {
      await this.preflight(update().layers);
      await this.download();
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
      await journal.updateRecord((u) => (u.phase = 'swapping'));
    }
    if (update().phase === 'swapping') await this.swap();
    if (update().phase === 'rolling_back')
      return this.rollback(update().rollbackReason ?? 'health check failed');
    if (update().phase === 'committing') await this.commit();
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

  private fullOf(diffId: string): { digest: string; size: number } {
    const layer = (this.deps.journal.state.update as UpdateRecord).layers.find((l) => l.diffId === diffId);
    const d = layer?.download;
    if (!d) throw new AgentError(`no download for ${diffId}`, 'PLAN');
    return d.kind === 'full' ? d : d.fallback;
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
  private async download(): Promise<void> {
    const { config } = this.deps;
    const choices = [...(await this.choices()).entries()];
    const pending: [string, Choice][] = [];
    for (const entry of choices) if (!(await exists(layerPath(this.layers, entry[0])))) pending.push(entry);
    const progress = this.progress();
    const options = {
      attempts: config.downloadAttempts,
      retryBaseMs: config.retryBaseMs,
      onBytes: progress.add,
    };
    const worker = async (): Promise<void> => {
      for (let next = pending.shift(); next; next = pending.shift()) {
        const [diffId, choice] = next;
        try {
          await this.downloader.fetch(choice.digest, choice.size, options);
        } catch (error) {
          if (choice.kind !== 'delta' || isDiskFull(error)) throw error;
          await this.fallback(diffId, `delta download failed: ${(error as Error).message}`);
          const full = this.fullOf(diffId);
          progress.grow(full.size);
          await this.downloader.fetch(full.digest, full.size, options);
        }
      }
    };
    await Promise.all(Array.from({ length: config.downloadConcurrency }, worker));
  }

  /** Rebuilds every new layer (delta against exported bases, or gunzip), each checked against its diffID. */
  private async rebuild(): Promise<void> {
    const { engine, journal, config } = this.deps;
    const update = journal.state.update as UpdateRecord;
    const choices = await this.choices();
    const wanted = new Set<string>();
    const todo: string[] = [];
    for (const [diffId, choice] of choices) {
      if (await exists(layerPath(this.layers, diffId))) continue;
      todo.push(diffId);
      if (choice.kind === 'delta') for (const base of choice.bases) wanted.add(base);
    }
    // Layers the engine holds but not on the chain of the new image must travel in the archive too.
    const chains = await heldChains(engine);
    for (const service of update.manifest.services)
      for (const diffId of layersNeedingBytes(service, chains)) if (!choices.has(diffId)) wanted.add(diffId);
    const missing = await exportBaseLayers(engine, wanted, this.layers);
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
          );
          this.deps.log.info('layer rebuilt from delta', { diffId, delta: choice.digest });
          continue;
        } catch (error) {
          if (isDiskFull(error)) throw error;
          if (!(error instanceof DeltaError || error instanceof AgentError)) throw error;
          await this.fallback(diffId, `delta failed to apply: ${(error as Error).message}`);
        }
      }
      const full = this.fullOf(diffId);
      const onBytes = choice.kind === 'delta' ? this.progress().add : options.onBytes;
      const gzip = await this.downloader.fetch(full.digest, full.size, { ...options, onBytes });
      try {
        await rebuildFromGzip(gzip, diffId, out);
      } catch (error) {
        if (error instanceof LayerDigestError) await this.deps.ledger.reset(full.digest);
        throw error;
      }
      this.deps.log.info('layer unpacked from full download', { diffId });
    }
    for (const base of wanted)
      if (missing.has(base) && !choices.has(base))
        throw new AgentError(`engine lost layer ${base}`, 'BASE_MISSING');
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

  private async removeReleaseContainers(releaseId: string): Promise<void> {
    const { engine } = this.deps;
    for (const c of await managedContainers(engine))
      if (c.Labels[RELEASE_LABEL] === releaseId) await engine.removeContainer(c.Id);
  }

  /** Stops the old containers, starts the new, health-checks them; the outcome is journaled as commit or rollback. */
  private async swap(): Promise<void> {
    const { engine, journal, config, log } = this.deps;
    let update = journal.state.update as UpdateRecord;
    if (!update.swap) {
      const old = (await managedContainers(engine)).filter(
        (c) => c.Labels[RELEASE_LABEL] !== update.releaseId,
      );
      if (old.some((c) => c.State === 'running')) await this.waitForLock();
      await journal.updateRecord(
        (u) => (u.swap = { step: 'create', oldContainers: old.map((c) => c.Id), newContainers: [] }),
      );
    }
    update = journal.state.update as UpdateRecord;
    const swap = () => (journal.state.update as UpdateRecord).swap as NonNullable<UpdateRecord['swap']>;
    if (swap().step === 'create') {
      this.report('installing');
      await this.removeReleaseContainers(update.releaseId);
      const ids = await createReleaseContainers(engine, update.manifest, config.networkMode);
      await journal.updateRecord((u) =>
        Object.assign(u.swap as object, { step: 'stop_old', newContainers: ids }),
      );
    }
    if (swap().step === 'stop_old') {
      for (const id of swap().oldContainers) await engine.stopContainer(id, config.stopTimeoutSeconds);
      await journal.updateRecord((u) => ((u.swap as { step: string }).step = 'start_new'));
    }
    if (swap().step === 'start_new') {
      this.report('starting');
      try {
        for (const id of swap().newContainers) await engine.startContainer(id);
      } catch (error) {
        return this.markRollback(`containers failed to start: ${(error as Error).message}`);
      }
      await journal.updateRecord((u) => ((u.swap as { step: string }).step = 'health'));
    }
    if (swap().step === 'health') {
      try {
        await waitHealthy(engine, swap().newContainers, config.healthGraceMs, config.healthTimeoutMs);
      } catch (error) {
        if (!(error instanceof HealthCheckError)) throw error;
        log.warn('health check failed', { error: error.message });
        return this.markRollback(error.message);
      }
      await journal.updateRecord((u) => (u.phase = 'committing'));
    }
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

  private async rollback(reason: string): Promise<void> {
    const { engine, journal } = this.deps;
    const update = journal.state.update as UpdateRecord;
    await this.removeReleaseContainers(update.releaseId);
    for (const id of update.swap?.oldContainers ?? []) await engine.startContainer(id).catch(() => undefined);
    await journal.write((s) => {
      s.rejected = { releaseId: update.releaseId, status: 'rolled_back', reason };
      s.update = null;
    });
    this.deps.reporter.report({ status: 'rolled_back', releaseId: update.releaseId, error: reason });
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
      s.rejected = null;
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
