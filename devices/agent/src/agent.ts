import { mkdir } from 'node:fs/promises';
import type { DeviceTarget } from '../../../libs/protocol/src/device-target';
import type { TargetNotice } from '../../../libs/protocol/src/messages';
import type { ReleaseManifest } from '../../../libs/protocol/src/release';
import type { AgentConfig } from './config';
import { RELEASE_LABEL, managedContainers } from './containers';
import { ensureRegistered, type Credentials } from './credentials';
import { EngineClient } from './engine';
import { AgentError, PreflightError, SignatureError, isDiskFull } from './errors';
import { Journal } from './journal';
import { DownloadLedger } from './ledger';
import type { Logger } from './log';
import { PushChannel } from './push-channel';
import { Reporter } from './reporter';
import { ServerApi } from './server-api';
import { verifyManifest } from './signature';
import { Updater } from './updater';

const MIN_RETRY_MS = 2000;

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

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
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
    );
    this.push.start();
    this.log.info('agent started', { uuid: this.creds.uuid });
    this.trigger('start');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
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

  private onNotice(payload: Buffer): void {
    if (payload.length === 0) return;
    try {
      // The notice only wakes the agent: what it acts on is the signed answer of the target
      // endpoint. So a light check here, not the zod schema (zod alone costs a device ~12 MB RSS).
      const notice = JSON.parse(payload.toString('utf8')) as Partial<TargetNotice>;
      if (typeof notice !== 'object' || notice === null || typeof notice.releaseId !== 'string')
        throw new Error('not a target notice');
      if (notice.manifest && typeof notice.signature === 'string')
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

  private async reconcile(): Promise<void> {
    const have = [...(await this.engine.layerDiffIds()).keys()];
    const target: DeviceTarget = await this.api.target(have);
    const release = target.release;
    if (!release) {
      this.reporter.report({ status: 'idle', releaseId: this.journal.state.current?.releaseId ?? null });
      return;
    }
    try {
      verifyManifest(release.manifest, release.signature, this.creds.signingPublicKey);
      if (release.manifest.releaseId !== release.id || release.manifest.fleetId !== this.creds.fleetId)
        throw new SignatureError(
          `manifest of release ${release.id} names release ${release.manifest.releaseId} of fleet ${release.manifest.fleetId}`,
        );
    } catch (error) {
      if (!(error instanceof SignatureError)) throw error;
      // Refused, reported, and asked again later: a tampering middlebox may go away.
      this.log.error('release refused', { releaseId: release.id, error: error.message });
      this.reporter.report({ status: 'failed', releaseId: release.id, error: error.message });
      throw error;
    }
    const { current, rejected, update } = this.journal.state;
    if (current?.releaseId === release.id && !update) {
      await this.ensureRunning(release.id);
      this.reporter.report({ status: 'running', releaseId: release.id });
      return;
    }
    if (rejected?.releaseId === release.id) {
      this.reporter.report({ status: rejected.status, releaseId: release.id, error: rejected.reason });
      return;
    }
    if (rejected) await this.journal.write((s) => (s.rejected = null));
    try {
      await this.updater.run(release, target.layers);
    } catch (error) {
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

  /** After a reboot or a killed engine: the committed release's containers run. */
  private async ensureRunning(releaseId: string): Promise<void> {
    for (const c of await managedContainers(this.engine)) {
      if (c.Labels[RELEASE_LABEL] === releaseId && c.State !== 'running')
        await this.engine.startContainer(c.Id);
    }
  }
}
