import type { DeviceStateMessage } from '../../../libs/protocol/src/messages';
import { createLogger } from './log';
import { Reporter } from './reporter';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('state reporter', () => {
  it('coalesces progress to one report a second, newest wins, and sends a status change at once', async () => {
    const sent: DeviceStateMessage[] = [];
    const reporter = new Reporter(
      { publish: async (m) => (sent.push(m), true), post: async () => undefined },
      createLogger('error'),
    );
    for (let i = 0; i <= 5; i++)
      reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: i, bytesTotal: 10 });
    await sleep(50);
    expect(sent.map((m) => m.bytesDone)).toEqual([5]);
    for (let i = 6; i <= 10; i++)
      reporter.report({ status: 'downloading', releaseId: 'r', bytesDone: i, bytesTotal: 10 });
    await sleep(50);
    expect(sent).toHaveLength(1);
    await sleep(1100);
    expect(sent.map((m) => m.bytesDone)).toEqual([5, 10]);
    reporter.report({ status: 'installing', releaseId: 'r' });
    await sleep(20);
    expect(sent.map((m) => m.status)).toEqual(['downloading', 'downloading', 'installing']);
    reporter.close();
  });

  it('falls back to HTTP when MQTT is down, and retries what could not be sent', async () => {
    const posted: DeviceStateMessage[] = [];
    let fail = true;
    const reporter = new Reporter(
      {
        publish: async () => false,
        post: async (m) => {
          if (fail) throw new Error('offline');
          posted.push(m);
        },
      },
      createLogger('error'),
    );
    reporter.report({ status: 'failed', releaseId: 'r', error: 'boom' });
    await sleep(20);
    expect(posted).toEqual([]);
    fail = false;
    await reporter.flush();
    expect(posted.map((m) => m.status)).toEqual(['failed']);
    reporter.close();
  });

  it('does not repeat an unchanged status', async () => {
    const sent: DeviceStateMessage[] = [];
    const reporter = new Reporter(
      { publish: async (m) => (sent.push(m), true), post: async () => undefined },
      createLogger('error'),
    );
    reporter.report({ status: 'idle', releaseId: null });
    reporter.report({ status: 'idle', releaseId: null });
    await sleep(20);
    expect(sent).toHaveLength(1);
    reporter.close();
  });
});
