import { DOWNLOAD_WAIT, NO_UPDATE_POLICY } from '@ferry/protocol/wire';
import { DownloadPacer } from './download-pacer';
import { WindowWaitError } from './errors';

describe('download pacer', () => {
  it('holds downloads to the rate cap: 300 kB at 100 kB/s takes about 2 s after a 1 s burst', async () => {
    const pacer = new DownloadPacer({ ...NO_UPDATE_POLICY, downloadRate: 100_000 }, () => Date.now());
    const started = Date.now();
    for (let sent = 0; sent < 300_000; sent += 10_000) await pacer.pace(10_000);
    const seconds = (Date.now() - started) / 1000;
    expect(seconds).toBeGreaterThanOrEqual(1.9);
    expect(seconds).toBeLessThan(8);
  });

  it('does not wait without a cap', async () => {
    const pacer = new DownloadPacer(NO_UPDATE_POLICY, () => Date.now());
    const started = Date.now();
    for (let i = 0; i < 1000; i += 1) await pacer.pace(1_000_000);
    expect(Date.now() - started).toBeLessThan(200);
  });

  it('stops every download once the download window closes, and says when it opens again', async () => {
    let now = Date.parse('2026-01-14T12:30:00Z'); // Wednesday, inside 12:00-13:00 UTC
    const pacer = new DownloadPacer(
      { ...NO_UPDATE_POLICY, downloadWindows: ['Mon-Fri 12:00-13:00 UTC'] },
      () => now,
    );
    pacer.checkWindow();
    await pacer.pace(1000);
    now = Date.parse('2026-01-14T13:00:01Z');
    await expect(pacer.pace(1000)).rejects.toThrow(WindowWaitError);
    const error = (() => {
      try {
        pacer.checkWindow();
      } catch (e) {
        return e as WindowWaitError;
      }
    })();
    expect(error).toMatchObject({ reason: DOWNLOAD_WAIT, opensAt: Date.parse('2026-01-15T12:00:00Z') });
    // Sticky: the other parallel downloads stop too, even if the clock went back inside.
    now = Date.parse('2026-01-14T12:40:00Z');
    expect(() => pacer.checkWindow()).toThrow(WindowWaitError);
  });

  it('refuses to start outside the download window', () => {
    const pacer = new DownloadPacer(
      { ...NO_UPDATE_POLICY, downloadWindows: ['Mon-Fri 12:00-13:00 UTC'] },
      () => Date.parse('2026-01-17T12:30:00Z'), // Saturday
    );
    expect(() => pacer.checkWindow()).toThrow(
      /waiting for download window \(opens 2026-01-19T12:00:00.000Z\)/,
    );
  });
});
