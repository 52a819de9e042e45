import { SingleBar } from 'cli-progress';

import { bytes, duration } from './format';

/** A byte counter shown while something streams. */
export interface ByteProgress {
  update(done: number): void;
  stop(): void;
}

const quiet: ByteProgress = { update: () => undefined, stop: () => undefined };

/**
 * A progress bar on stderr when it is a terminal and the output is for people: bytes, rate and ETA
 * with a known total; bytes and rate without one (stdin). Nothing otherwise, so pipes, logs and JSON
 * stay clean.
 */
export function byteProgress(
  label: string,
  total: number | undefined,
  options: { json?: boolean; stream?: NodeJS.WriteStream } = {},
): ByteProgress {
  const stream = options.stream ?? process.stderr;
  if (!stream.isTTY || options.json) return quiet;
  const known = total !== undefined;
  const bar = new SingleBar({
    stream,
    format: known
      ? `${label} [{bar}] {percentage}% | {done} / {size} | {rate} | ETA {left}`
      : `${label} {done} | {rate}`,
    hideCursor: true,
    clearOnComplete: false,
    fps: 5,
  });
  const started = Date.now();
  const payload = (done: number): Record<string, string> => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = done / seconds;
    return {
      done: bytes(done),
      size: bytes(total),
      rate: `${bytes(Math.round(rate))}/s`,
      left: known && rate > 0 ? duration(Math.max(0, (total - done) / rate)) : '-',
    };
  };
  bar.start(known ? Math.max(1, total) : 1, 0, payload(0));
  let stopped = false;
  // The bar hides the cursor: give it back when the operator presses Ctrl-C mid-transfer.
  const interrupted = (): void => {
    bar.stop();
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  return {
    update(done) {
      if (!stopped) bar.update(known ? done : 0, payload(done));
    },
    stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('SIGINT', interrupted);
      bar.stop();
    },
  };
}
