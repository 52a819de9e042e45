import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { DeviceStateMessage, FerryEvent } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { EventBus } from '../events/event-bus.service';
import { DeviceStateWrite } from '../devices/device-reports.repository';
import { DevicesService } from '../devices/devices.service';

/** How long a status change or presence change waits for others to share its write. */
const PROMPT_FLUSH_MS = 20;

/** Counters for tests, `GET /v1/mqtt/stats` and benchmarks. */
export interface DeviceStateStats {
  /** State and presence reports taken in. */
  reports: number;
  /** Database transactions that wrote reports. */
  flushes: number;
  /** Device rows written. */
  rowsWritten: number;
  /** Reports for devices the database does not know (deleted, or made up on an external broker). */
  unknownDevices: number;
}

/**
 * Takes in what devices report and writes it coalesced: the latest state of each device is kept in
 * memory and written every `FERRY_STATE_FLUSH_MS` (progress), or within a few milliseconds when a
 * device's status or presence changes. 10,000 devices reporting progress every second cost one
 * transaction a second, not 10,000. Every write goes out on the event bus.
 */
@Injectable()
export class DeviceStateService implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(DeviceStateService.name);
  private pending = new Map<string, DeviceStateWrite>();
  /** Last status and presence written per device: a change of either is flushed promptly. */
  private readonly lastStatus = new Map<string, string>();
  private readonly lastOnline = new Map<string, boolean>();
  private readonly fleetOf = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private promptTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  /** Set once the final flush ran: the database is about to close. */
  private closed = false;
  private readonly counters: DeviceStateStats = { reports: 0, flushes: 0, rowsWritten: 0, unknownDevices: 0 };

  constructor(
    private readonly devices: DevicesService,
    private readonly bus: EventBus,
    private readonly clock: Clock,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), this.config.stateFlushMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.promptTimer) clearTimeout(this.promptTimer);
  }

  /** Writes what is pending before the database closes. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.promptTimer) clearTimeout(this.promptTimer);
    await this.flush();
    this.closed = true;
  }

  stats(): DeviceStateStats {
    return { ...this.counters };
  }

  /** Remembers a device's fleet (known when it authenticates), sparing a lookup at flush. */
  knowDevice(uuid: string, fleetId: string): void {
    this.fleetOf.set(uuid, fleetId);
  }

  /** Forgets a deprovisioned device: pending writes for it are dropped. */
  forget(uuid: string): void {
    this.fleetOf.delete(uuid);
    this.pending.delete(uuid);
    this.lastStatus.delete(uuid);
    this.lastOnline.delete(uuid);
  }

  /** A state report. Safe to repeat: the latest report wins. */
  report(uuid: string, message: DeviceStateMessage, receivedAt: string): void {
    this.counters.reports += 1;
    const write = this.pendingFor(uuid);
    write.state = {
      status: message.status,
      releaseId: message.releaseId ?? null,
      bytesDone: message.bytesDone ?? null,
      bytesTotal: message.bytesTotal ?? null,
      error: message.error ?? null,
      ...(message.status === 'running' && message.releaseId ? { runningReleaseId: message.releaseId } : {}),
      ...(message.variablesVersion !== undefined ? { variablesVersion: message.variablesVersion } : {}),
      ...(message.services && { services: message.services }),
      ...(message.metrics && { metrics: message.metrics }),
      at: receivedAt,
    };
    write.lastSeenAt = receivedAt;
    if (this.lastStatus.get(uuid) !== message.status) this.soon();
  }

  /** A device came online or went offline. */
  presence(uuid: string, online: boolean, at: string): void {
    this.counters.reports += 1;
    const write = this.pendingFor(uuid);
    write.online = online;
    write.lastSeenAt = at;
    if (this.lastOnline.get(uuid) !== online) this.soon();
  }

  /** Writes everything pending now; resolves when written (also what a concurrent flush wrote). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.pending.size === 0 || this.closed) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.write([...batch.values()]).finally(() => {
      this.flushing = null;
    });
    await this.flushing;
  }

  private pendingFor(uuid: string): DeviceStateWrite {
    let write = this.pending.get(uuid);
    if (!write) {
      write = { uuid };
      this.pending.set(uuid, write);
    }
    return write;
  }

  private soon(): void {
    if (this.promptTimer || this.closed) return;
    this.promptTimer = setTimeout(() => {
      this.promptTimer = null;
      void this.flush();
    }, PROMPT_FLUSH_MS);
  }

  private async write(writes: DeviceStateWrite[]): Promise<void> {
    try {
      const unknown = writes.filter((w) => !this.fleetOf.has(w.uuid)).map((w) => w.uuid);
      if (unknown.length > 0) {
        for (const [uuid, fleetId] of await this.devices.fleetsOf(unknown)) this.fleetOf.set(uuid, fleetId);
      }
      const known = writes.filter((w) => this.fleetOf.has(w.uuid));
      this.counters.unknownDevices += writes.length - known.length;
      this.counters.rowsWritten += await this.devices.writeReports(known);
      this.counters.flushes += 1;
      const events: FerryEvent[] = [];
      for (const w of known) {
        const fleetId = this.fleetOf.get(w.uuid) ?? null;
        if (w.state) {
          this.lastStatus.set(w.uuid, w.state.status);
          const { runningReleaseId: _running, at, ...state } = w.state;
          events.push({ type: 'device.state', fleetId, at, data: { uuid: w.uuid, ...state } });
        }
        if (w.online !== undefined) {
          this.lastOnline.set(w.uuid, w.online);
          events.push({
            type: 'device.presence',
            fleetId,
            at: w.lastSeenAt ?? this.clock.iso(),
            data: { uuid: w.uuid, online: w.online },
          });
        }
      }
      this.bus.publish(events);
    } catch (error) {
      // Kept for the next flush unless newer reports replaced them.
      for (const w of writes) if (!this.pending.has(w.uuid)) this.pending.set(w.uuid, w);
      this.logger.warn(`device state not written, retrying: ${(error as Error).message}`);
    }
  }
}
