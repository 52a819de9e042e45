import { SingleBar } from 'cli-progress';

export interface Progress {
  update(phase: string, done: number, total: number): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; otherwise nothing, so pipes and logs stay clean. */
export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    stream,
    format: '{phase} [{bar}] {percentage}% | {value}/{total} bytes',
    hideCursor: true,
    clearOnComplete: true,
  });
  let phase: string | undefined;
  let running = false;
  return {
    update(next, done, total) {
      if (next !== phase) {
        if (running) bar.stop();
        bar.start(Math.max(1, total), done, { phase: next });
        phase = next;
        running = true;
      }
      bar.setTotal(Math.max(1, total));
      bar.update(done, { phase: next });
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
