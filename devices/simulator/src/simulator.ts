import { createHash } from 'node:crypto';
import { RegisteredDevice } from '@ferry/protocol';
import { Behaviour, ReleaseHealth, RunningRelease, VirtualDevice } from './virtual-device';

export interface SimulatorOptions {
  /** The server's base URL (`http://host:port`). */
  url: string;
  /** A provisioning key of the fleet the devices join. */
  provisioningKey: string;
  count: number;
  /** MQTT URL to use instead of the one the server hands out (for example behind NAT). */
  mqttUrl?: string;
  /** Device names are `{namePrefix}-{n}`. @defaultValue `sim` */
  namePrefix?: string;
  /**
   * What device `index` does with release `releaseId`. Overrides the shares below.
   */
  behaviour?: (index: number, releaseId: string) => Behaviour;
  /** Shares (0..1) of devices that fail, crash after starting, hang, or go offline on an update; the rest succeed. */
  failShare?: number;
  crashShare?: number;
  hangShare?: number;
  offlineShare?: number;
  /**
   * Per release id, how it behaves once running: app crashes and offline drops per device-minute
   * (docs/rollouts.md uses it to show the control-group comparison).
   */
  releaseHealth?: Record<string, ReleaseHealth>;
  /** How releases not in `releaseHealth` behave once running. @defaultValue none: never crash nor drop */
  health?: ReleaseHealth;
  /** Milliseconds between install steps. @defaultValue 100 */
  stepMs?: number;
  /** The devices' clock, for their update policies' windows. @defaultValue Date.now */
  now?: () => number;
  /** Longest wait between two looks at the clock while waiting for a window. @defaultValue 60000 */
  windowRecheckMs?: number;
  /** How long a crashing device runs before it fails. @defaultValue 1000 */
  crashAfterMs?: number;
  /** The release every device starts out running (as if flashed at the factory). */
  running?: RunningRelease;
  /** Devices registered at once. @defaultValue 10 */
  concurrency?: number;
  /** How long each device waits for its first MQTT connection. @defaultValue 10000 */
  connectTimeoutMs?: number;
  log?: (message: string) => void;
}

/**
 * A stable pick in [0, 1) per device and release, so a device fails the same release the same way
 * every run and shares hold across fleets of any size.
 */
export function stableShare(uuid: string, releaseId: string): number {
  return createHash('sha256').update(`${uuid}/${releaseId}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** Picks a behaviour from the configured shares. */
export function behaviourFromShares(
  options: Pick<SimulatorOptions, 'failShare' | 'crashShare' | 'hangShare' | 'offlineShare'>,
  pick: number,
): Behaviour {
  let edge = 0;
  for (const [share, behaviour] of [
    [options.failShare, 'fail'],
    [options.crashShare, 'crash'],
    [options.hangShare, 'hang'],
    [options.offlineShare, 'offline'],
  ] as const) {
    edge += share ?? 0;
    if (pick < edge) return behaviour;
  }
  return 'ok';
}

/** Many virtual devices in one process, against a real Ferry server. */
export class Simulator {
  readonly devices: VirtualDevice[] = [];

  private constructor(private readonly options: SimulatorOptions) {}

  /** Registers `count` devices with the provisioning key and connects each to MQTT. */
  static async start(options: SimulatorOptions): Promise<Simulator> {
    const simulator = new Simulator(options);
    const concurrency = options.concurrency ?? 10;
    const indexes = Array.from({ length: options.count }, (_, i) => i);
    try {
      for (let i = 0; i < indexes.length; i += concurrency) {
        const added = await Promise.allSettled(
          indexes.slice(i, i + concurrency).map((index) => simulator.add(index)),
        );
        const failed = added.find((a): a is PromiseRejectedResult => a.status === 'rejected');
        if (failed) throw failed.reason;
      }
    } catch (error) {
      // The caller never gets this simulator: stop what it started, or their clients live on.
      await simulator.stop();
      throw error;
    }
    return simulator;
  }

  /** Counts of devices by their last reported status. */
  statuses(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const d of this.devices) counts[d.status] = (counts[d.status] ?? 0) + 1;
    return counts;
  }

  bytesDownloaded(): number {
    return this.devices.reduce((s, d) => s + d.stats.bytesDownloaded, 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.stop()));
  }

  private async add(index: number): Promise<void> {
    const name = `${this.options.namePrefix ?? 'sim'}-${index + 1}`;
    const response = await fetch(`${this.options.url}/v1/device/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        provisioningKey: this.options.provisioningKey,
        name,
        deviceType: 'ferry-simulator',
        agentVersion: 'simulator-0.1.0',
      }),
    });
    if (response.status !== 201 && response.status !== 200)
      throw new Error(`registering ${name} failed: HTTP ${response.status} ${await response.text()}`);
    const registration = (await response.json()) as RegisteredDevice;
    const device: VirtualDevice = new VirtualDevice(
      registration,
      {
        url: this.options.url,
        mqttUrl: this.options.mqttUrl,
        stepMs: this.options.stepMs ?? 100,
        now: this.options.now,
        windowRecheckMs: this.options.windowRecheckMs,
        connectTimeoutMs: this.options.connectTimeoutMs,
        crashAfterMs: this.options.crashAfterMs ?? 1000,
        behaviour: (releaseId) =>
          this.options.behaviour?.(index, releaseId) ??
          behaviourFromShares(this.options, stableShare(registration.uuid, releaseId)),
        health: (releaseId) => this.options.releaseHealth?.[releaseId] ?? this.options.health,
        log: this.options.log ?? (() => undefined),
      },
      this.options.running ?? null,
    );
    this.devices[index] = device;
    await device.connect();
  }
}
