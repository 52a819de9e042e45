import { Writable } from 'node:stream';
import pino from 'pino';
import { PinoLoggerService, requestLogger } from './pino-logger.service';

function capture(): { lines: Record<string, unknown>[]; logger: pino.Logger } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'debug' }, sink) };
}

describe('PinoLoggerService', () => {
  it('writes Nest log calls as pino lines with their context, stack and level', () => {
    const { lines, logger } = capture();
    const service = new PinoLoggerService(logger);
    service.log('worker started', 'Worker');
    service.error('job failed', 'Error: boom\n    at x', 'DeltaWorker');
    service.verbose('not shown at debug', 'Worker');
    service.warn({ job: 7, msg: 'slow' }, 'Queue');
    expect(lines).toEqual([
      expect.objectContaining({ level: 30, msg: 'worker started', context: 'Worker' }),
      expect.objectContaining({
        level: 50,
        msg: 'job failed',
        context: 'DeltaWorker',
        stack: 'Error: boom\n    at x',
      }),
      expect.objectContaining({ level: 40, msg: 'slow', job: 7, context: 'Queue' }),
    ]);
  });

  it("logs inside a request through the request's child logger (its request id)", () => {
    const { lines, logger } = capture();
    const service = new PinoLoggerService(logger);
    requestLogger.run(logger.child({ reqId: 'abc-123' }), () => service.log('fleet created', 'Fleets'));
    service.log('outside');
    expect(lines[0]).toEqual(expect.objectContaining({ reqId: 'abc-123', msg: 'fleet created' }));
    expect(lines[1]).not.toHaveProperty('reqId');
  });

  it('keeps an Error as a serialised err field', () => {
    const { lines, logger } = capture();
    new PinoLoggerService(logger).error(new Error('disk full'), 'Blobs');
    expect(lines[0]).toEqual(
      expect.objectContaining({
        msg: 'disk full',
        context: 'Blobs',
        err: expect.objectContaining({ message: 'disk full' }),
      }),
    );
  });
});
