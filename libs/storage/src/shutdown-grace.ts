/** How long a stop signal may take to close everything before the process exits anyway. */
export const SHUTDOWN_GRACE_MS = 5000;

/**
 * On SIGTERM or SIGINT, Nest's shutdown hooks close every connection; a close that waits for a service
 * that is away (Redis, a database) must not keep the process from stopping. After
 * {@link SHUTDOWN_GRACE_MS} the process says so on stderr and exits.
 */
export function exitAfterShutdownGrace(name: string, graceMs = SHUTDOWN_GRACE_MS): void {
  const arm = (signal: NodeJS.Signals): void => {
    setTimeout(() => {
      process.stderr.write(`${name}: shutdown after ${signal} took over ${graceMs / 1000} s; exiting now\n`);
      process.exit(1);
    }, graceMs).unref();
  };
  process.once('SIGTERM', arm);
  process.once('SIGINT', arm);
}

/**
 * Waits for `work` to settle, but no longer than `ms`: for closes that wait for a service that may be
 * away (whatever they still hold is dropped with the process).
 */
export async function settleWithin(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
