import { mkdir } from 'node:fs/promises';
import {
  ManifestSignatureError,
  type ReleaseSignature,
  type ReleaseTrust,
  TargetRefusedError,
  checkTargetProgress,
  followReleaseTrust,
  verifyManifest,
  verifySignedTarget,
  verifyThreshold,
} from '@ferry/protocol/wire';
import type { DeviceTarget, DeviceVariables, ReleaseManifest, TargetNotice } from '@ferry/protocol/wire';
import { NO_UPDATE_POLICY } from '@ferry/protocol/wire';
import { systemClock, type Clock } from './clock';
import type { AgentConfig } from './config';
import { SERVICE_LABEL, managedContainers } from './containers';
import { serviceStates } from './service-states';
import { ensureRegistered, pinTrust, type Credentials } from './credentials';
import { EngineClient } from './engine';
import { AgentError, PreflightError, WindowWaitError, isDiskFull } from './errors';
import { Journal } from './journal';
import { DownloadLedger } from './ledger';
import type { Logger } from './log';
import { PushChannel } from './push-channel';
import { Reporter } from './reporter';
import { ServerApi } from './server-api';
import { Updater } from './updater';
import { variablesNoticeVersion } from './variables';
import { purgeVolumes } from './volume-purges';

const MIN_RETRY_MS = 2000;
/** Target requests in one reconciliation while the engine keeps losing layers the plan counts as held. */
const STALE_PLAN_ATTEMPTS = 3;

/**
 * The device agent: registers, listens for target notices (polling when MQTT is down), and
 * reconciles the engine with the target one update at a time.
 */
export class Agent {
  private readonly api: ServerApi;
  private readonly engine: EngineClient;
  private creds!: Required<Credentials>;
  private journal!: Journal;
  private reporter!: Reporter;
  private push: PushChannel | null = null;
  private updater!: Updater;
  private running: Promise<void> | null = null;
  private again = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private retryMs = MIN_RETRY_MS;
  private stopped = false;
  private mqttUp = false;
  /** The release the last reconciliation found running with nothing to do (null: anything else). */
  private steady: string | null = null;
  private serviceTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    /** Judges targets' expiry; a test passes its own. */
    private readonly clock: Clock = systemClock,
  ) {
    this.api = new ServerApi(config.apiUrl);
    this.engine = new EngineClient(config.engineSocket);
  }

  async start(): Promise<void> {
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    const version = await this.engine.version();
    this.log.info('engine', {
      version: version.Version,
      api: version.ApiVersion,
      socket: this.config.engineSocket,
    });
    this.creds = await this.withRetry('registration', () =>
      ensureRegistered(
        this.api,
        this.config.dataDir,
        this.config.provisioningKey,
        this.config.deviceName,
        this.log,
      ),
    );
    this.api.setApiKey(this.creds.apiKey);
    this.journal = await Journal.open(this.config.dataDir);
    const ledger = await DownloadLedger.open(this.config.dataDir);
    this.reporter = new Reporter(
      {
        publish: (m) => this.push?.publishState(m) ?? Promise.resolve(false),
        post: (m) => this.api.reportState(m),
      },
      this.log,
      undefined,
      () => this.runningVariablesVersion(),
    );
    this.updater = new Updater({
      config: this.config,
      engine: this.engine,
      api: this.api,
      journal: this.journal,
      ledger,
      reporter: this.reporter,
      log: this.log,
    });
    await this.updater.recover();
    this.push = new PushChannel(
      this.config.mqttUrl ?? this.creds.mqttUrl,
      this.creds.uuid,
      this.creds.apiKey,
      (payload) => this.onNotice(payload),
      (connected) => {
        // Only a change of state moves the poll timer; reconnect attempts must not keep resetting it.
        if (connected !== this.mqttUp) {
          this.mqttUp = connected;
          this.schedulePoll();
        }
      },
      this.log,
      (payload) => this.onVariablesNotice(payload),
    );
    this.push.start();
    this.serviceTimer = setInterval(() => void this.reportServices(), this.config.serviceReportMs);
    this.serviceTimer.unref?.();
    this.log.info('agent started', { uuid: this.creds.uuid });
    this.trigger('start');
  }

  /**
   * Between reconciliations, while the release runs with nothing to do: the services' states as the
   * engine has them (the reporter sends only a change, so a restart count that grew or a health check
   * that turned goes out within one period, not at the next poll).
   */
  private async reportServices(): Promise<void> {
    const releaseId = this.steady;
    if (!releaseId || this.running || this.stopped) return;
    try {
      const services = await serviceStates(this.engine);
      if (this.steady === releaseId && !this.running && !this.stopped)
        this.reporter.report({ status: 'running', releaseId, services });
    } catch (error) {
      this.log.debug('service states not read', { error: (error as Error).message });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.serviceTimer) clearInterval(this.serviceTimer);
    await this.running?.catch(() => undefined);
    await this.reporter?.flush();
    this.reporter?.close();
    await this.push?.stop();
  }

  private async withRetry<T>(what: string, action: () => Promise<T>): Promise<T> {
    for (let delay = MIN_RETRY_MS; ; delay = Math.min(delay * 2, 300_000)) {
      try {
        return await action();
      } catch (error) {
        if (error instanceof AgentError && error.code === 'CONFIG') throw error;
        this.log.warn(`${what} failed, retrying`, { error: (error as Error).message, inMs: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * A fleet with pinned release keys: the threshold of those keys must have signed the manifest (the
   * server's own signature counts for nothing, so a stolen server cannot forge a release). Otherwise
   * the fleet key pinned at registration.
   */
  private verifyRelease(release: {
    id: string;
    manifest: ReleaseManifest;
    signature: string;
    ownerSignatures?: ReleaseSignature[] | null;
  }): void {
    const trust = this.creds.releaseTrust;
    if (trust)
      verifyThreshold(release.manifest, release.ownerSignatures ?? [], trust, `release ${release.id}`);
    else verifyManifest(release.manifest, release.signature, this.creds.signingPublicKey);
  }

  private onNotice(payload: Buffer): void {
    if (payload.length === 0) return;
    try {
      // The notice only wakes the agent: what it acts on is the signed answer of the target
      // endpoint. So a light check here, not the zod schema (zod alone costs a device ~12 MB RSS).
      const notice = JSON.parse(payload.toString('utf8')) as Partial<TargetNotice>;
      if (typeof notice !== 'object' || notice === null || typeof notice.releaseId !== 'string')
        throw new Error('not a target notice');
      // (With pinned release keys the notice's server signature proves nothing: reconcile checks.)
      if (notice.manifest && typeof notice.signature === 'string' && !this.creds.releaseTrust)
        verifyManifest(
          notice.manifest as unknown as ReleaseManifest,
          notice.signature,
          this.creds.signingPublicKey,
        );
      this.log.info('target notice', { releaseId: notice.releaseId, version: notice.version });
    } catch (error) {
      this.log.warn('target notice ignored', { error: (error as Error).message });
      return;
    }
    this.trigger('notice');
  }

  /**
   * New configuration variables for this device (delivered by the server; docs/compose.md). They are
   * journaled first, then a reconciliation recreates exactly the services whose effective configuration
   * changed; an update in progress uses them for the containers it creates. An older or equal version
   * than the one held is ignored, so a replayed message changes nothing.
   */
  async applyVariables(variables: DeviceVariables): Promise<void> {
    const held = this.journal.state.variables;
    if (held && held.version >= variables.version) return;
    await this.journal.write((s) => (s.variables = variables));
    this.log.info('configuration variables received', { version: variables.version });
    this.trigger('variables');
  }

  /** The version of the configuration variables the running containers were created with, or null. */
  variablesVersion(): number | null {
    return this.journal.state.variables?.version ?? null;
  }

  /** Polls with ±20 % jitter: often while MQTT is down, rarely (as a safety net) while it is up. */
  private schedulePoll(delayMs?: number): void {
    if (this.stopped) return;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const base =
      delayMs ?? (this.push?.connected ? this.config.pollIntervalMs * 6 : this.config.pollIntervalMs);
    const wait = Math.round(base * (0.8 + Math.random() * 0.4));
    this.pollTimer = setTimeout(() => this.trigger('poll'), wait);
    this.pollTimer.unref?.();
  }

  /** Runs one reconciliation now, or once more after the running one. */
  trigger(reason: string): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.log.debug('reconcile', { reason });
    this.running = this.reconcile()
      .then(() => {
        this.retryMs = MIN_RETRY_MS;
        this.schedulePoll();
      })
      .catch((error: Error) => {
        if (error instanceof WindowWaitError) {
          // Not a failure: asked again when the window opens, and every minute meanwhile (the policy
          // may change, and a device's clock may jump when it first syncs).
          const wait = Math.max(
            1000,
            Math.min(error.opensAt - this.clock.nowMs(), this.config.windowRecheckMs),
          );
          this.log.info('update waits for its window', { reason: error.reason, opensAt: error.opensAt });
          this.retryMs = MIN_RETRY_MS;
          if (this.pollTimer) clearTimeout(this.pollTimer);
          this.pollTimer = setTimeout(() => this.trigger('window'), wait);
          this.pollTimer.unref?.();
          return;
        }
        this.log.warn('update attempt failed', {
          error: error.message,
          code: (error as AgentError).code,
          retryInMs: this.retryMs,
        });
        this.schedulePoll(Math.min(this.retryMs, this.config.pollIntervalMs));
        this.retryMs = Math.min(this.retryMs * 2, 300_000);
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.trigger('again');
        }
      });
  }

  /** A `variables` notice: a reconciliation fetches them (and only when their version is new). */
  private onVariablesNotice(payload: Buffer): void {
    const version = variablesNoticeVersion(payload);
    if (version === null) {
      if (payload.length > 0) this.log.warn('variables notice ignored', { bytes: payload.length });
      return;
    }
    if (version === this.journal.state.variables?.version) return;
    this.log.info('variables notice', { version });
    this.trigger('variables notice');
  }

  /**
   * Fetches the device's configuration variables when they changed (`If-None-Match`: 304 otherwise) and
   * hands them to {@link applyVariables}. Inside a reconciliation, so never beside another journal write.
   * A failure leaves the variables held as they are: the next poll or notice tries again.
   */
  private async syncVariables(): Promise<void> {
    try {
      const fresh = await this.api.variables(this.journal.state.variables?.version ?? null);
      if (fresh) await this.applyVariables(fresh);
    } catch (error) {
      this.log.warn('configuration variables not fetched', { error: (error as Error).message });
    }
  }

  /**
   * The variables version to report: the one the running containers were created with, or, with no
   * release running, the one held.
   */
  private runningVariablesVersion(): number | null {
    const state = this.journal?.state;
    if (!state) return null;
    if (state.current) return state.appliedVariables ?? null;
    return state.variables?.version ?? null;
  }

  /** The highest target version accepted and release version run, as the journal holds them. */
  private held(): { targetVersion: number; releaseVersion: number } {
    const { highest, current } = this.journal.state;
    return {
      targetVersion: highest?.targetVersion ?? 0,
      releaseVersion: Math.max(highest?.releaseVersion ?? 0, current?.version ?? 0),
    };
  }

  /** Journals what {@link held} derives, when it grew (a commit, or an accepted target). */
  private async remember(targetVersion: number): Promise<void> {
    const held = this.held();
    const next = {
      targetVersion: Math.max(held.targetVersion, targetVersion),
      releaseVersion: held.releaseVersion,
    };
    const stored = this.journal.state.highest;
    if (stored?.targetVersion === next.targetVersion && stored.releaseVersion === next.releaseVersion) return;
    await this.journal.write((s) => (s.highest = next));
  }

  /**
   * Checks a target answer before anything reads it (docs/security.md "Signed targets"): signed by the
   * pinned online key, for this device, not expired. A target naming a new online key, signed by the
   * pinned one, pins the new key (a rotation).
   */
  private async verifyTarget(raw: unknown): Promise<DeviceTarget> {
    let pinned = this.creds.targetKey;
    if (!pinned) {
      // A device registered by an agent older than signed targets: trust on first use.
      const offered = (raw as { onlineKey?: unknown } | null)?.onlineKey;
      if (typeof offered !== 'string')
        throw new TargetRefusedError('signature', 'the target names no online key to pin');
      this.log.warn('online key pinned on first use');
      pinned = offered;
    }
    const target = verifySignedTarget(raw, pinned, this.creds.uuid, this.clock.nowMs());
    if (target.onlineKey !== this.creds.targetKey) {
      this.creds = await pinTrust(this.config.dataDir, this.creds, { targetKey: target.onlineKey });
      this.log.info('online key pinned', { targetVersion: target.targetVersion });
    }
    await this.followReleaseKeys(target);
    return target;
  }

  /**
   * Follows the fleet's release-key rotations the target carries, each signed by the threshold of the
   * keys before it (docs/security.md), so a release signed by the new keys runs and one signed only by
   * a revoked key does not. A chain that does not verify refuses the target.
   */
  private async followReleaseKeys(target: DeviceTarget): Promise<void> {
    const pinned = this.creds.releaseTrust;
    if (!pinned) return;
    let next: ReleaseTrust;
    try {
      next = followReleaseTrust(pinned, target.releaseTrustChain);
    } catch (error) {
      if (error instanceof ManifestSignatureError)
        throw new TargetRefusedError('release-keys', error.message);
      throw error;
    }
    if (next.version === pinned.version) return;
    this.creds = await pinTrust(this.config.dataDir, this.creds, { releaseTrust: next });
    this.log.info('release keys rotated', {
      from: pinned.version,
      to: next.version,
      threshold: next.threshold,
    });
  }

  /**
   * Checks a verified target against what the device holds: not older than one accepted (replay), and
   * no release older than the newest run unless the target is a requested rollback (the release the
   * device runs is never a downgrade). Remembers the target version it accepts.
   */
  private async checkProgress(target: DeviceTarget): Promise<void> {
    const current = this.journal.state.current;
    const held = this.held();
    const runs = current !== null && target.release?.id === current.releaseId;
    checkTargetProgress(target, runs ? { ...held, releaseVersion: 0 } : held);
    await this.remember(target.targetVersion);
  }

  /**
   * Runs a target check; a refusal leaves the device on its release, is logged and reported with the
   * reason (for the release the answer names, or the one running), and is asked again later.
   */
  private async refuseBadTarget<T>(raw: unknown, check: () => Promise<T>): Promise<T> {
    try {
      return await check();
    } catch (error) {
      if (!(error instanceof TargetRefusedError)) throw error;
      const named = (raw as { release?: { id?: unknown } | null } | null)?.release?.id;
      const releaseId =
        typeof named === 'string' && /^[\w-]{1,64}$/.test(named)
          ? named
          : (this.journal.state.current?.releaseId ?? null);
      this.log.error('target refused', { reason: error.reason, releaseId, error: error.message });
      this.reporter.report({ status: 'failed', releaseId, error: error.message });
      throw error;
    }
  }

  /**
   * The verified target, planned against the layers the engine holds now. The layers are read before
   * the request, so an image removed meanwhile (an operator's prune, a test) leaves a plan that counts
   * a lost layer as held, which would then be fetched whole instead of as a delta: asked again, a few
   * times at most.
   */
  private async currentTarget(): Promise<{ raw: unknown; target: DeviceTarget }> {
    for (let attempt = 1; ; attempt++) {
      const have = [...(await this.engine.layerDiffIds()).keys()];
      const raw = await this.api.target(have);
      const target = await this.refuseBadTarget(raw, () => this.verifyTarget(raw));
      // The engine is read again only when something would be installed: the running release's
      // images are in use and cannot go.
      const { current, update } = this.journal.state;
      const held = target.layers.filter((l) => l.download === null);
      const installs =
        target.release !== null && (target.release.id !== current?.releaseId || update !== null);
      if (!installs || held.length === 0 || attempt === STALE_PLAN_ATTEMPTS) return { raw, target };
      const now = await this.engine.layerDiffIds();
      const lost = held.filter((l) => !now.has(l.diffId));
      if (lost.length === 0) return { raw, target };
      this.log.info('target planned against layers the engine no longer holds, asking again', {
        lost: lost.map((l) => l.diffId),
      });
    }
  }

  private async reconcile(): Promise<void> {
    this.steady = null;
    await this.remember(0);
    const { raw, target } = await this.currentTarget();
    // Signed with the target, so nobody between server and device can change them; a server from
    // before signed variables is asked on its own endpoint.
    if (target.variables) await this.applyVariables(target.variables);
    else await this.syncVariables();
    const release = target.release;
    if (!release) {
      await this.refuseBadTarget(raw, () => this.checkProgress(target));
      this.reporter.report({ status: 'idle', releaseId: this.journal.state.current?.releaseId ?? null });
      return;
    }
    try {
      this.verifyRelease(release);
      if (release.manifest.releaseId !== release.id || release.manifest.fleetId !== this.creds.fleetId)
        throw new ManifestSignatureError(
          `manifest of release ${release.id} names release ${release.manifest.releaseId} of fleet ${release.manifest.fleetId}`,
        );
    } catch (error) {
      if (!(error instanceof ManifestSignatureError)) throw error;
      // Refused, reported, and asked again later: a tampering middlebox may go away.
      this.log.error('release refused', { releaseId: release.id, error: error.message });
      this.reporter.report({ status: 'failed', releaseId: release.id, error: error.message });
      throw error;
    }
    // After the release's own signature, so the version judged is one its owner signed.
    await this.refuseBadTarget(raw, () => this.checkProgress(target));
    const { current, rejected, update } = this.journal.state;
    if (target.volumePurges?.length) {
      const manifests = [release.manifest, current?.manifest, update?.manifest];
      await purgeVolumes(
        { engine: this.engine, api: this.api, log: this.log },
        target.volumePurges,
        manifests.filter((m): m is ReleaseManifest => m !== undefined),
      );
    }
    if (current?.releaseId === release.id && !update) {
      if (!(await this.updater.reconfigure(current))) await this.ensureRunning();
      this.reporter.report({
        status: 'running',
        releaseId: release.id,
        services: await serviceStates(this.engine),
      });
      this.steady = release.id;
      return;
    }
    if (rejected?.releaseId === release.id) {
      this.reporter.report({ status: rejected.status, releaseId: release.id, error: rejected.reason });
      return;
    }
    if (rejected) await this.journal.write((s) => (s.rejected = null));
    try {
      await this.updater.run(release, target.layers, target.updatePolicy ?? NO_UPDATE_POLICY);
      await this.remember(target.targetVersion);
      const { current: now, update: pending } = this.journal.state;
      if (now?.releaseId === release.id && !pending) this.steady = release.id;
    } catch (error) {
      if (error instanceof WindowWaitError) {
        this.reporter.report({ status: 'deferred', releaseId: release.id, error: error.message });
        throw error;
      }
      if (error instanceof PreflightError) {
        this.reporter.report({ status: 'deferred', releaseId: release.id, error: error.message });
        throw error;
      }
      if (isDiskFull(error)) {
        const reason = `disk full in ${this.config.dataDir}: ${(error as Error).message}`;
        this.reporter.report({ status: 'deferred', releaseId: release.id, error: reason });
        throw new PreflightError(reason);
      }
      this.reporter.report({ status: 'failed', releaseId: release.id, error: (error as Error).message });
      throw error;
    }
  }

  /**
   * After a reboot or a killed engine: the committed release's containers run (except those whose
   * restart policy says a stop is final: `no` and `on-failure`).
   */
  private async ensureRunning(): Promise<void> {
    const services = this.journal.state.current?.manifest.services ?? [];
    for (const c of await managedContainers(this.engine)) {
      const restart = services.find((s) => s.name === c.Labels[SERVICE_LABEL])?.config?.restart ?? '';
      if (restart === 'no' || restart.startsWith('on-failure')) continue;
      if (c.State === 'created' || c.State === 'exited') await this.engine.startContainer(c.Id);
    }
  }
}
