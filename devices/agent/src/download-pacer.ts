import { DOWNLOAD_WAIT, insideAnyWindow, nextOpening, type UpdatePolicy } from '@ferry/protocol/wire';
import { WindowWaitError } from './errors';
import { sleep } from './downloader';

/** How often a running download checks that its download window is still open. */
const WINDOW_CHECK_MS = 5000;

/**
 * Paces one update's downloads by its policy: all of them together at most `downloadRate` bytes per
 * second (a token bucket with one second of burst; the paused reader holds the TCP window shut, so
 * the link really carries no more), and only inside the download windows: when one closes the
 * download stops with {@link WindowWaitError}, keeping what arrived to resume from.
 */
export class DownloadPacer {
  private tokens: number;
  private refilledAt: number;
  private checkedAt = -Infinity;
  private closed: WindowWaitError | null = null;

  constructor(
    private readonly policy: UpdatePolicy,
    private readonly now: () => number,
  ) {
    this.tokens = policy.downloadRate;
    this.refilledAt = now();
  }

  /**
   * Throws {@link WindowWaitError} when downloads may not run now; once a window closed, every later
   * call throws too, so the parallel downloads of the update all stop.
   */
  checkWindow(): void {
    if (this.closed) throw this.closed;
    const now = this.now();
    this.checkedAt = now;
    if (!insideAnyWindow(this.policy.downloadWindows, now)) {
      this.closed = new WindowWaitError(DOWNLOAD_WAIT, nextOpening(this.policy.downloadWindows, now));
      throw this.closed;
    }
  }

  /** Called after each chunk: waits as long as the rate cap asks, and checks the window now and then. */
  async pace(bytes: number): Promise<void> {
    if (
      this.closed ||
      (this.policy.downloadWindows.length > 0 && this.now() - this.checkedAt >= WINDOW_CHECK_MS)
    )
      this.checkWindow();
    const rate = this.policy.downloadRate;
    if (rate <= 0) return;
    const now = this.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    this.tokens -= bytes;
    if (this.tokens < 0) await sleep(Math.ceil((-this.tokens / rate) * 1000));
  }
}
