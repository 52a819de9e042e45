import { Readable } from 'node:stream';
import { ClientClosedError, RequestTimeoutError } from '@ferry/protocol';

/** The stream we read from closed before it ended: the client went away mid-upload. */
export class SourceClosedError extends ClientClosedError {
  constructor() {
    super('the upload was closed before it ended');
  }
}

/**
 * Reads `input` without owning it, for a stream that must outlive a failed read: an HTTP request
 * whose socket still has to carry the error answer. `stream.pipeline` destroys every stage on
 * failure, and destroying a request destroys its socket; so the request never enters a pipeline
 * itself. Instead: its data, end, error and early close reach the returned stream (so an aborted or
 * timed-out upload fails the pipeline at once), and destroying the returned stream only detaches
 * from `input` and leaves it paused. With `idleTimeoutMs`, waiting that long for the next byte
 * (while the reader wants one: backpressure does not count) fails with {@link RequestTimeoutError}.
 */
export function borrowStream(input: Readable, options: { idleTimeoutMs?: number } = {}): Readable {
  const { idleTimeoutMs } = options;
  let idle: NodeJS.Timeout | undefined;
  const waitForData = (): void => {
    if (idleTimeoutMs === undefined || idle !== undefined) return;
    idle = setTimeout(() => {
      onError(
        new RequestTimeoutError(
          `the upload stalled: no data for ${idleTimeoutMs / 1000} s (FERRY_UPLOAD_IDLE_SECONDS)`,
        ),
      );
    }, idleTimeoutMs);
  };
  const stopWaiting = (): void => {
    clearTimeout(idle);
    idle = undefined;
  };
  const onData = (chunk: Buffer): void => {
    stopWaiting();
    if (!out.push(chunk)) input.pause();
  };
  const onEnd = (): void => {
    detach();
    out.push(null);
  };
  const onError = (error: Error): void => {
    detach();
    out.destroy(error);
  };
  const onClose = (): void => {
    if (!input.readableEnded) onError(new SourceClosedError());
  };
  const detach = (): void => {
    stopWaiting();
    input.off('data', onData);
    input.off('end', onEnd);
    input.off('error', onError);
    input.off('aborted', onClose);
    input.off('close', onClose);
    input.pause();
  };
  const out = new Readable({
    read() {
      waitForData();
      input.resume();
    },
    destroy(error, callback) {
      detach();
      callback(error);
    },
  });
  if (input.readableEnded) {
    out.push(null);
    return out;
  }
  if (input.destroyed || input.errored) {
    out.destroy(input.errored ?? new SourceClosedError());
    return out;
  }
  input.pause();
  input.on('data', onData);
  input.once('end', onEnd);
  input.once('error', onError);
  input.once('aborted', onClose);
  input.once('close', onClose);
  return out;
}

/**
 * Waits for the first bytes of `stream` (null when it ends empty) and puts them back, so whoever
 * reads the stream next still sees them. Rejects when the stream fails first.
 */
export function peekFirstChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = (): void => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      stream.unshift(chunk);
      resolve(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(null);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

/** True for the errors zlib gives for input that is not (or not complete) gzip data. */
export function isZlibError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
