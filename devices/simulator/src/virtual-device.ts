import { createHash } from 'node:crypto';
import { MqttClient, connect } from 'mqtt';
import {
  DeviceStateMessage,
  DeviceTarget,
  RegisteredDevice,
  ReleaseManifest,
  TargetNotice,
  TargetNoticeSchema,
  deviceTopic,
} from '@ferry/protocol';

/**
 * What a virtual device does with an update: `ok` installs it; `fail` reports failed after
 * downloading; `crash` comes up and fails a little later (fails its bake); `hang` starts downloading
 * and goes silent; `offline` drops off the network when told.
 */
export type Behaviour = 'ok' | 'fail' | 'crash' | 'hang' | 'offline';

export interface VirtualDeviceOptions {
  /** The server's base URL (`http://host:port`). */
  url: string;
  /** MQTT URL to use instead of the one the server hands out at registration. */
  mqttUrl?: string;
  /** Milliseconds between install steps (downloaded → installing → starting → running). */
  stepMs: number;
  /** How long a `crash` device runs before it fails. */
  crashAfterMs: number;
  behaviour: (releaseId: string) => Behaviour;
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
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
  private stopped = false;
  private silent = false;
  readonly stats: DeviceStats = { bytesDownloaded: 0, downloads: [], updates: 0, failures: 0 };

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
      if (topic !== deviceTopic(this.uuid, 'target') || payload.length === 0) return;
      this.onNotice(payload);
    });
    client.on('connect', () => {
      client.subscribe(deviceTopic(this.uuid, 'target'), { qos: 1 }, () => undefined);
      if (!this.working)
        this.report(this.running ? { status: 'running', releaseId: this.running.id } : { status: 'idle' });
    });
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`device ${this.uuid} could not connect to ${url}`)),
        10_000,
      );
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Disconnects for good (the broker publishes its last will: offline). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.endAsync(true).catch(() => undefined);
  }

  private onNotice(payload: Buffer): void {
    let notice: TargetNotice;
    try {
      notice = TargetNoticeSchema.parse(JSON.parse(payload.toString('utf8')));
    } catch {
      this.options.log(`${this.uuid}: ignored a malformed target notice`);
      return;
    }
    if (this.silent || this.stopped) return;
    if (notice.releaseId === this.working) return;
    if (notice.releaseId === this.running?.id) {
      // Sent back to the release it runs (a rollback after a failure): it is already there.
      this.working = null;
      this.report({ status: 'running', releaseId: notice.releaseId });
      return;
    }
    this.working = notice.releaseId;
    this.update(notice).catch((error: Error) => {
      this.options.log(`${this.uuid}: update to ${notice.releaseId} failed: ${error.message}`);
      if (this.working === notice.releaseId) this.working = null;
    });
  }

  private report(message: DeviceStateMessage): void {
    if (this.silent || this.stopped || !this.client) return;
    this.status = message.status;
    this.client.publish(
      deviceTopic(this.uuid, 'state'),
      JSON.stringify({ ...message, timestamp: new Date().toISOString() }),
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
    }
    this.report({ status: 'downloaded', releaseId, bytesDone: total, bytesTotal: total });
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
    this.working = null;
    this.report({ status: 'running', releaseId, bytesDone: total, bytesTotal: total });
    if (behaviour === 'crash') {
      await sleep(this.options.crashAfterMs);
      if (this.running?.id !== releaseId) return;
      this.stats.failures += 1;
      this.report({ status: 'failed', releaseId, error: 'service main crashed after start (simulated)' });
    }
  }

  /**
   * What to download: `GET /v1/device/target?have=…` (deltas from layers this device holds), or, on a
   * server without that endpoint, the gzip'd layers of the notice's manifest that it lacks.
   */
  private async fetchTarget(
    notice: TargetNotice,
  ): Promise<{ layers: string[]; downloads: { digest: string; kind: 'delta' | 'full'; size: number }[] }> {
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
    return { layers, downloads };
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

  private async request(path: string): Promise<Response> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await fetch(`${this.options.url}${path}`, {
          headers: { authorization: `Bearer ${this.registration.apiKey}` },
        });
      } catch (error) {
        // The server is restarting: keep trying, as an agent would.
        if (this.stopped || attempt >= 60) throw error;
        await sleep(Math.min(2000, 200 * attempt));
      }
    }
  }
}
