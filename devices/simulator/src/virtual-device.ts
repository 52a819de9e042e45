import { createHash } from 'node:crypto';
import { MqttClient, connect } from 'mqtt';
import {
  DeviceStateMessage,
  DeviceTarget,
  DeviceVariables,
  RegisteredDevice,
  ReleaseManifest,
  DOWNLOAD_WAIT,
  MAINTENANCE_WAIT,
  NO_UPDATE_POLICY,
  TargetNotice,
  TargetNoticeSchema,
  UpdatePolicy,
  deviceTopic,
  insideAnyWindow,
  nextOpening,
} from '@ferry/protocol';

/**
 * What a virtual device does with an update: `ok` installs it; `fail` reports failed after
 * downloading; `crash` comes up and fails a little later (fails its bake); `hang` starts downloading
 * and goes silent; `offline` drops off the network when told.
 */
export type Behaviour = 'ok' | 'fail' | 'crash' | 'hang' | 'offline';

/**
 * How a release behaves once it runs (after every health check passed): its app crashes and is
 * restarted by the engine (`restartCount` grows) and the device drops off the network at these rates.
 */
export interface ReleaseHealth {
  /** App crashes (engine restarts) per device-minute. @defaultValue 0 */
  crashesPerMinute?: number;
  /** Times per device-minute the device drops offline. @defaultValue 0 */
  offlinePerMinute?: number;
  /** How long a drop lasts before it reconnects. @defaultValue 1500 */
  offlineMs?: number;
}

/** How often a running device draws its crashes and drops. */
const HEALTH_TICK_MS = 250;

export interface VirtualDeviceOptions {
  /** The server's base URL (`http://host:port`). */
  url: string;
  /** MQTT URL to use instead of the one the server hands out at registration. */
  mqttUrl?: string;
  /** Milliseconds between install steps (downloaded → installing → starting → running). */
  stepMs: number;
  /** How long `connect()` waits for the first MQTT connection (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a `crash` device runs before it fails. */
  crashAfterMs: number;
  behaviour: (releaseId: string) => Behaviour;
  /** The crash and offline rates of the release it runs (none: it never crashes nor drops). */
  health?: (releaseId: string) => ReleaseHealth | undefined;
  /** Random numbers in [0, 1) for crashes and drops. @defaultValue Math.random */
  random?: () => number;
  /** The device's clock, for its update policy's windows. @defaultValue Date.now */
  now?: () => number;
  /** Longest wait between two looks at the clock while waiting for a window. @defaultValue 60000 */
  windowRecheckMs?: number;
  log: (message: string) => void;
}

/** A release a virtual device starts out running: its id and layer diffIDs. */
export interface RunningRelease {
  id: string;
  layers: string[];
}

export interface DeviceStats {
  bytesDownloaded: number;
  downloads: { digest: string; kind: 'delta' | 'full'; size: number }[];
  updates: number;
  failures: number;
  /**
   * Every target notice received (retained copies delivered again on a reconnect included): a notice
   * is one `(releaseId, issuedAt)`, so the same one seen twice is a redelivery, two of them for one
   * release are two notifications.
   */
  notices: { releaseId: string; issuedAt: string }[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The id of a device's app container for a release (a new container per release, as the agent makes). */
function containerIdOf(uuid: string, releaseId: string): string {
  return createHash('sha256').update(`${uuid}/${releaseId}/container`).digest('hex').slice(0, 12);
}

/** Layer diffIDs of a manifest. */
function manifestLayers(manifest: ReleaseManifest): string[] {
  return [...new Set(manifest.services.flatMap((s) => s.layers.map((l) => l.diffId)))];
}

/**
 * One simulated device: registered, connected over MQTT with its own UUID and key, acting on target
 * notices like the real agent (fetch the target, download and verify blobs, report each step).
 */
export class VirtualDevice {
  client: MqttClient | null = null;
  running: RunningRelease | null;
  /** The release an update is working on. */
  working: string | null = null;
  status = 'registered';
  /** The configuration variables it runs with (fetched after each `variables` notice), or null. */
  variables: DeviceVariables | null = null;
  private stopped = false;
  private silent = false;
  /** The app's container: a new one per release it installs, restarted on each simulated crash. */
  private container = { id: '', restarts: 0 };
  private healthTimer: NodeJS.Timeout | null = null;
  private droppedUntil = 0;
  readonly stats: DeviceStats = { bytesDownloaded: 0, downloads: [], updates: 0, failures: 0, notices: [] };

  constructor(
    readonly registration: RegisteredDevice,
    private readonly options: VirtualDeviceOptions,
    running: RunningRelease | null = null,
  ) {
    this.running = running;
  }

  get uuid(): string {
    return this.registration.uuid;
  }

  /** Connects to the broker (reconnecting on its own) and waits for the first connection. */
  async connect(): Promise<void> {
    const url = this.options.mqttUrl ?? this.registration.mqtt.url;
    const client = connect(url, {
      clientId: this.uuid,
      username: this.uuid,
      password: this.registration.apiKey,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 500,
      connectTimeout: 5000,
      will: {
        topic: deviceTopic(this.uuid, 'presence'),
        payload: Buffer.from(JSON.stringify({ status: 'offline' })),
        qos: 1,
        retain: true,
      },
    });
    this.client = client;
    client.on('message', (topic, payload) => {
      if (payload.length === 0) return;
      if (topic === deviceTopic(this.uuid, 'target')) this.onNotice(payload);
      else if (topic === deviceTopic(this.uuid, 'variables')) this.onVariablesNotice(payload);
    });
    client.on('connect', () => {
      client.subscribe(
        [deviceTopic(this.uuid, 'target'), deviceTopic(this.uuid, 'variables')],
        { qos: 1 },
        () => undefined,
      );
      if (!this.working) this.report(this.runningReport());
      // As the agent does at start: a device that joined after the last change has no notice waiting.
      if (!this.variables) this.refreshVariables();
    });
    client.on('error', () => undefined);
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        // Given up: it must not go on reconnecting behind the caller's back.
        this.stopped = true;
        client.end(true);
        reject(new Error(`device ${this.uuid} could not connect to ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.startHealth();
  }

  /** Disconnects for good (the broker publishes its last will: offline). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await this.client?.endAsync(true).catch(() => undefined);
  }

  /** What it reports while it runs a release (or sits idle): with its app's container, as the agent does. */
  private runningReport(): DeviceStateMessage {
    if (!this.running) return { status: 'idle' };
    if (!this.container.id) this.container = { id: containerIdOf(this.uuid, this.running.id), restarts: 0 };
    return {
      status: 'running',
      releaseId: this.running.id,
      services: [
        {
          name: 'main',
          state: 'running',
          health: 'healthy',
          image: `sha256:${this.running.id}`.slice(0, 80),
          restartCount: this.container.restarts,
          containerId: this.container.id,
        },
      ],
    };
  }

  /**
   * While it runs a release: draws crashes (the engine restarts the app: `restartCount` grows and is
   * reported) and drops (the connection is cut, the broker publishes its last will, it reconnects)
   * at the release's rates.
   */
  private startHealth(): void {
    if (this.healthTimer || !this.options.health) return;
    const random = this.options.random ?? Math.random;
    this.healthTimer = setInterval(() => {
      const releaseId = this.running?.id;
      if (!releaseId || this.working || this.silent || this.stopped || Date.now() < this.droppedUntil) return;
      const rates = this.options.health?.(releaseId);
      if (!rates) return;
      const chance = (perMinute = 0): boolean => random() < (perMinute * HEALTH_TICK_MS) / 60_000;
      if (chance(rates.crashesPerMinute)) {
        this.container.restarts += 1;
        this.report(this.runningReport());
      }
      if (chance(rates.offlinePerMinute)) this.drop(rates.offlineMs ?? 1500);
    }, HEALTH_TICK_MS);
    this.healthTimer.unref();
  }

  /** Cuts the connection without a DISCONNECT (the broker sends the last will) and reconnects later. */
  private drop(ms: number): void {
    const client = this.client;
    if (!client) return;
    this.droppedUntil = Date.now() + ms;
    client.options.reconnectPeriod = ms;
    client.stream.destroy();
    setTimeout(() => {
      client.options.reconnectPeriod = 500;
    }, ms).unref();
  }

  private onNotice(payload: Buffer): void {
    let notice: TargetNotice;
    try {
      notice = TargetNoticeSchema.parse(JSON.parse(payload.toString('utf8')));
    } catch {
      this.options.log(`${this.uuid}: ignored a malformed target notice`);
      return;
    }
    this.stats.notices.push({ releaseId: notice.releaseId, issuedAt: notice.issuedAt });
    if (this.silent || this.stopped) return;
    if (notice.releaseId === this.working) return;
    if (notice.releaseId === this.running?.id) {
      // Sent back to the release it runs (a rollback after a failure): it is already there.
      this.working = null;
      this.report(this.runningReport());
      return;
    }
    this.working = notice.releaseId;
    this.update(notice).catch((error: Error) => {
      this.options.log(`${this.uuid}: update to ${notice.releaseId} failed: ${error.message}`);
      if (this.working === notice.releaseId) this.working = null;
    });
  }

  /**
   * A `variables` notice: fetches the variables when their version differs from the one it runs (304
   * when they did not change), then reports its state again with the new `variablesVersion`.
   */
  private onVariablesNotice(payload: Buffer): void {
    let version: unknown;
    try {
      version = (JSON.parse(payload.toString('utf8')) as { version?: unknown }).version;
    } catch {
      version = undefined;
    }
    if (typeof version !== 'number') {
      this.options.log(`${this.uuid}: ignored a malformed variables notice`);
      return;
    }
    if (this.silent || this.stopped || version === this.variables?.version) return;
    this.refreshVariables();
  }

  /** Fetches the variables and, when they changed, reports its state with their version. */
  private refreshVariables(): void {
    this.fetchVariables()
      .then((changed) => {
        if (!changed || this.working) return;
        this.report(this.runningReport());
      })
      .catch((error: Error) => this.options.log(`${this.uuid}: variables not fetched: ${error.message}`));
  }

  /** `GET /v1/device/variables` with the held version as ETag; true when they changed. */
  private async fetchVariables(): Promise<boolean> {
    const held = this.variables;
    const response = await this.request(
      '/v1/device/variables',
      held ? { 'if-none-match': `"${held.version}"` } : {},
    );
    if (response.status === 304) return false;
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status}`);
    }
    this.variables = (await response.json()) as DeviceVariables;
    return true;
  }

  private report(message: DeviceStateMessage): void {
    if (this.silent || this.stopped || !this.client) return;
    this.status = message.status;
    const variables = this.variables ? { variablesVersion: this.variables.version } : {};
    this.client.publish(
      deviceTopic(this.uuid, 'state'),
      JSON.stringify({ ...message, ...variables, timestamp: new Date().toISOString() }),
      { qos: 1 },
      () => undefined,
    );
  }

  private async update(notice: TargetNotice): Promise<void> {
    const releaseId = notice.releaseId;
    const behaviour = this.options.behaviour(releaseId);
    this.stats.updates += 1;
    if (behaviour === 'offline') {
      this.silent = true;
      await this.client?.endAsync(true);
      return;
    }
    const plan = await this.fetchTarget(notice);
    if (this.working !== releaseId) return;
    const total = plan.downloads.reduce((s, d) => s + d.size, 0);
    let done = 0;
    this.report({ status: 'downloading', releaseId, bytesDone: 0, bytesTotal: total });
    if (behaviour === 'hang') {
      this.silent = true;
      return;
    }
    // Like the agent: downloads only inside a download window and at most at the rate cap, installs only
    // inside a maintenance window; it waits (reporting deferred) otherwise.
    if (!(await this.awaitWindow(plan.policy.downloadWindows, DOWNLOAD_WAIT, releaseId))) return;
    const started = this.now();
    for (const download of plan.downloads) {
      const size = await this.download(download.digest, (n) => {
        this.report({
          status: 'downloading',
          releaseId,
          bytesDone: Math.min(total, done + n),
          bytesTotal: total,
        });
      });
      done += size;
      this.stats.downloads.push({ ...download, size });
      // The rate cap: the downloads take at least as long as the cap allows for their bytes.
      if (plan.policy.downloadRate > 0)
        await sleep(started + (done / plan.policy.downloadRate) * 1000 - this.now());
    }
    this.report({ status: 'downloaded', releaseId, bytesDone: total, bytesTotal: total });
    if (!(await this.awaitWindow(plan.policy.maintenanceWindows, MAINTENANCE_WAIT, releaseId))) return;
    await sleep(this.options.stepMs);
    this.report({ status: 'installing', releaseId, bytesDone: total, bytesTotal: total });
    await sleep(this.options.stepMs);
    if (behaviour === 'fail') {
      this.stats.failures += 1;
      this.working = null;
      this.report({
        status: 'failed',
        releaseId,
        bytesDone: total,
        bytesTotal: total,
        error: 'service main exited with code 1 during its health check (simulated failure)',
      });
      return;
    }
    this.report({ status: 'starting', releaseId, bytesDone: total, bytesTotal: total });
    await sleep(this.options.stepMs);
    if (this.working !== releaseId) return;
    this.running = { id: releaseId, layers: plan.layers };
    this.container = { id: containerIdOf(this.uuid, releaseId), restarts: 0 };
    this.working = null;
    this.report({ ...this.runningReport(), bytesDone: total, bytesTotal: total });
    if (behaviour === 'crash') {
      await sleep(this.options.crashAfterMs);
      if (this.running?.id !== releaseId) return;
      this.stats.failures += 1;
      this.report({ status: 'failed', releaseId, error: 'service main crashed after start (simulated)' });
    }
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /**
   * Waits until the clock is inside one of `windows` (at once for none), reporting `deferred` with
   * `reason` meanwhile; false when the device was told something else or stopped while it waited.
   */
  private async awaitWindow(windows: string[], reason: string, releaseId: string): Promise<boolean> {
    let told = false;
    while (!insideAnyWindow(windows, this.now())) {
      const opens = nextOpening(windows, this.now());
      if (!told) {
        this.report({
          status: 'deferred',
          releaseId,
          error: `${reason} (opens ${new Date(opens).toISOString()})`,
        });
        told = true;
      }
      await sleep(Math.max(50, Math.min(opens - this.now(), this.options.windowRecheckMs ?? 60_000)));
      if (this.stopped || this.working !== releaseId) return false;
    }
    return true;
  }

  /**
   * What to download: `GET /v1/device/target?have=…` (deltas from layers this device holds), or, on a
   * server without that endpoint, the gzip'd layers of the notice's manifest that it lacks.
   */
  private async fetchTarget(notice: TargetNotice): Promise<{
    layers: string[];
    downloads: { digest: string; kind: 'delta' | 'full'; size: number }[];
    policy: UpdatePolicy;
  }> {
    const have = this.running?.layers ?? [];
    const response = await this.request(`/v1/device/target?have=${encodeURIComponent(have.join(','))}`);
    if (response.status === 200) {
      const target = (await response.json()) as DeviceTarget;
      if (target.release?.id === notice.releaseId) {
        return {
          layers: target.layers.map((l) => l.diffId),
          downloads: target.layers.flatMap((l) =>
            l.download ? [{ digest: l.download.digest, kind: l.download.kind, size: l.download.size }] : [],
          ),
          policy: target.updatePolicy ?? NO_UPDATE_POLICY,
        };
      }
    } else {
      await response.body?.cancel();
    }
    const manifest = notice.manifest as unknown as ReleaseManifest | undefined;
    if (!manifest?.services)
      throw new Error('the notice carries no manifest and the target endpoint did not answer');
    const held = new Set(have);
    const layers = manifestLayers(manifest);
    const downloads = manifest.services
      .flatMap((s) => s.layers)
      .filter((l, i, all) => !held.has(l.diffId) && all.findIndex((x) => x.diffId === l.diffId) === i)
      .map((l) => ({ digest: l.gzipDigest, kind: 'full' as const, size: l.gzipSize }));
    return { layers, downloads, policy: NO_UPDATE_POLICY };
  }

  /** Downloads a blob, checking its sha256 against its name; retries while the server is away. */
  private async download(digest: string, progress: (bytes: number) => void): Promise<number> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const response = await this.request(`/v1/blobs/${digest}`);
        if (response.status !== 200) throw new Error(`blob ${digest}: HTTP ${response.status}`);
        const hash = createHash('sha256');
        let bytes = 0;
        let reported = 0;
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          bytes += chunk.length;
          if (Date.now() - reported > 200) {
            reported = Date.now();
            progress(bytes);
          }
        }
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual !== digest) throw new Error(`blob ${digest} arrived as ${actual}`);
        this.stats.bytesDownloaded += bytes;
        progress(bytes);
        return bytes;
      } catch (error) {
        if (this.stopped || attempt >= 60) throw error;
        await sleep(Math.min(2000, 200 * attempt));
      }
    }
  }

  private async request(path: string, headers: Record<string, string> = {}): Promise<Response> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await fetch(`${this.options.url}${path}`, {
          headers: { authorization: `Bearer ${this.registration.apiKey}`, ...headers },
        });
      } catch (error) {
        // The server is restarting: keep trying, as an agent would.
        if (this.stopped || attempt >= 60) throw error;
        await sleep(Math.min(2000, 200 * attempt));
      }
    }
  }
}
