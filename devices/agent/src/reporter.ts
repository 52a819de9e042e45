import type { DeviceStateMessage, DeviceStatus } from '@ferry/protocol/wire';
import { Clock, ClockTimer, systemClock } from './clock';
import type { Logger } from './log';

export interface StateTransport {
  /** Publishes over MQTT; false when not connected. */
  publish(message: DeviceStateMessage): Promise<boolean>;
  /** `POST /v1/device/state`. */
  post(message: DeviceStateMessage): Promise<void>;
}

const PROGRESS_INTERVAL_MS = 1000;
const RETRY_MS = 5000;
const REPEAT_MS = 5 * 60_000;

/**
 * Sends state reports over MQTT, or over HTTP when the broker is unreachable. Progress reports of
 * the same status are coalesced to at most one a second (the newest wins); a status change goes
 * out at once. A report that could not be sent is retried until a newer one replaces it.
 */
export class Reporter {
  private lastSentAt = 0;
  private lastStatus: DeviceStatus | null = null;
  private lastKey = '';
  private lastKeyAt = 0;
  private pending: DeviceStateMessage | null = null;
  private timer: ClockTimer | null = null;
  private sending: Promise<void> = Promise.resolve();
  /** Every report actually sent, for tests and logs. */
  sent = 0;

  constructor(
    private readonly transport: StateTransport,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
    /** The configuration variables version the services run, added to every report (null: none). */
    private readonly variablesVersion: () => number | null = () => null,
  ) {}

  report(reported: Omit<DeviceStateMessage, 'timestamp'>): void {
    const variablesVersion = this.variablesVersion();
    const message = variablesVersion === null ? reported : { ...reported, variablesVersion };
    // Only changes are reported (as balena's supervisor), plus a repeat now and then as a heartbeat.
    const key = JSON.stringify([
      message.status,
      message.releaseId ?? null,
      message.error ?? null,
      message.services ?? null,
      message.variablesVersion ?? null,
    ]);
    const now = this.clock.nowMs();
    if (message.status !== 'downloading' && key === this.lastKey && now - this.lastKeyAt < REPEAT_MS) return;
    this.lastKey = key;
    this.lastKeyAt = now;
    const full: DeviceStateMessage = { ...message, timestamp: new Date(now).toISOString() };
    if (full.bytesDone !== undefined && full.bytesTotal !== undefined && full.bytesDone > full.bytesTotal)
      full.bytesTotal = full.bytesDone;
    this.pending = full;
    const progressOnly = full.status === this.lastStatus && full.status === 'downloading';
    const wait = progressOnly ? Math.max(0, this.lastSentAt + PROGRESS_INTERVAL_MS - now) : 0;
    if (wait === 0) {
      this.lastSentAt = now;
      this.lastStatus = full.status;
    }
    this.schedule(wait);
  }

  /** Sends whatever is pending now and waits for it (used before exiting). */
  async flush(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    await this.send();
  }

  close(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(wait: number): void {
    if (this.timer) {
      if (wait > 0) return;
      this.timer.cancel();
    }
    this.timer = this.clock.after(wait, () => {
      this.timer = null;
      this.lastSentAt = this.clock.nowMs();
      void this.send();
    });
  }

  private send(): Promise<void> {
    this.sending = this.sending.then(async () => {
      const message = this.pending;
      if (!message) return;
      this.pending = null;
      try {
        if (!(await this.transport.publish(message))) await this.transport.post(message);
        this.sent += 1;
        this.log.info('reported', { ...message });
      } catch (error) {
        this.log.warn('state report not sent', { status: message.status, error: (error as Error).message });
        this.pending ??= message;
        this.schedule(RETRY_MS);
      }
    });
    return this.sending;
  }
}
