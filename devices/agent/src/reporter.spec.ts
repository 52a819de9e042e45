import type { DeviceStateMessage } from '@ferry/protocol/wire';
import type { Clock, ClockTimer } from './clock';
import { createLogger } from './log';
import { Reporter, StateTransport } from './reporter';

/** Time that moves only when the test says so; due timers fire in order as it moves. */
class FakeClock implements Clock {
  private ms = Date.parse('2026-01-01T00:00:00.000Z');
  private timers: { at: number; fn: () => void; canceled: boolean }[] = [];

  nowMs(): number {
    return this.ms;
  }

  after(ms: number, fn: () => void): ClockTimer {
    const timer = { at: this.ms + ms, fn, canceled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.canceled = true) };
  }

  /** Moves time on by `ms`, firing every timer that falls due, then lets the reports go out. */
  async advance(ms: number): Promise<void> {
    const end = this.ms + ms;
    for (;;) {
      const due = this.timers.filter((t) => !t.canceled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.ms = Math.max(this.ms, due.at);
      due.canceled = true;
      due.fn();
      await settle();
    }
    this.ms = end;
    await settle();
  }
}

/** Lets promise chains that wait on nothing but each other run to the end (no time passes). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function reporterWith(transport: Partial<StateTransport>, clock: FakeClock): Reporter {
  return new Reporter(
    { publish: async () => true, post: async () => undefined, ...transport },
    createLogger('error'),
    clock,
  );
}

describe('state reporter', () => {
  it('coalesces progress to one report a second, newest wins, and sends a status change at once', async () => {
    const clock = new FakeClock();
    const sent: DeviceStateMessage[] = [];
    const reporter = reporterWith({ publish: async (m) => (sent.push(m), true) }, clock);
    for (let i = 0; i <= 5; i++)
      reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: i, bytesTotal: 10 });
    await clock.advance(0);
    expect(sent.map((m) => m.bytesDone)).toEqual([5]);
    expect(sent[0]?.timestamp).toBe('2026-01-01T00:00:00.000Z');
    await clock.advance(50);
    for (let i = 6; i <= 10; i++)
      reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: i, bytesTotal: 10 });
    await clock.advance(949);
    expect(sent).toHaveLength(1);
    await clock.advance(1);
    expect(sent.map((m) => m.bytesDone)).toEqual([5, 10]);
    reporter.report({ status: 'installing', releaseId: 'r' });
    await clock.advance(0);
    expect(sent.map((m) => m.status)).toEqual(['downloading', 'downloading', 'installing']);
    reporter.close();
  });

  it('falls back to HTTP when MQTT is down, and retries what could not be sent after 5 s', async () => {
    const clock = new FakeClock();
    const posted: DeviceStateMessage[] = [];
    let fail = true;
    const reporter = reporterWith(
      {
        publish: async () => false,
        post: async (m) => {
          if (fail) throw new Error('offline');
          posted.push(m);
        },
      },
      clock,
    );
    reporter.report({ status: 'failed', releaseId: 'r', error: 'boom' });
    await clock.advance(0);
    expect(posted).toEqual([]);
    fail = false;
    await clock.advance(4999);
    expect(posted).toEqual([]);
    await clock.advance(1);
    expect(posted.map((m) => m.status)).toEqual(['failed']);
    reporter.close();
  });

  it('sends what is pending when flushed', async () => {
    const clock = new FakeClock();
    const sent: DeviceStateMessage[] = [];
    const reporter = reporterWith({ publish: async (m) => (sent.push(m), true) }, clock);
    reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: 1, bytesTotal: 10 });
    reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: 2, bytesTotal: 10 });
    await reporter.flush();
    expect(sent.map((m) => m.bytesDone)).toEqual([2]);
    reporter.close();
  });

  it('does not repeat an unchanged status, except as a heartbeat every 5 minutes', async () => {
    const clock = new FakeClock();
    const sent: DeviceStateMessage[] = [];
    const reporter = reporterWith({ publish: async (m) => (sent.push(m), true) }, clock);
    reporter.report({ status: 'idle', releaseId: null });
    reporter.report({ status: 'idle', releaseId: null });
    await clock.advance(299_999);
    reporter.report({ status: 'idle', releaseId: null });
    await clock.advance(0);
    expect(sent).toHaveLength(1);
    await clock.advance(1);
    reporter.report({ status: 'idle', releaseId: null });
    await clock.advance(0);
    expect(sent).toHaveLength(2);
    reporter.close();
  });
});
