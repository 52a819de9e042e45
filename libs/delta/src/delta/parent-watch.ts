import { Worker } from 'node:worker_threads';

/**
 * Body of a watchdog thread that kills its process once the parent process is gone (the process
 * was re-parented: its ppid is no longer the parent's pid). It runs on its own thread because the
 * main thread may sit in a long synchronous call (a cover search, a big hash) and never get
 * to an event handler. Linux's prctl(PR_SET_PDEATHSIG) would do this in the kernel; Node has no
 * binding for it. `workerData`: `{ parent, intervalMs, graceMs }`; after seeing the parent gone it
 * leaves the main thread `graceMs` to exit on its own (and clean up), then sends SIGKILL.
 */
export const PARENT_WATCH_THREAD_SOURCE = `
const { workerData } = require('node:worker_threads');
let goneSince = 0;
setInterval(() => {
  if (process.ppid === workerData.parent) return;
  if (goneSince === 0) goneSince = Date.now();
  if (Date.now() - goneSince >= workerData.graceMs) process.kill(process.pid, 'SIGKILL');
}, workerData.intervalMs);
`;

export interface ParentWatchOptions {
  /** The pid the process must stay a child of. @defaultValue `process.ppid` at the call */
  parent?: number;
  /** How often the parent is checked. @defaultValue 500 */
  intervalMs?: number;
  /** How long the main thread gets to clean up and exit before the watchdog kills it. @defaultValue 2000 */
  graceMs?: number;
  /** Runs (synchronously) on the main thread when the parent is gone, just before the process exits. */
  onParentGone?: () => void;
}

/**
 * Makes this process exit when its parent dies, whatever the parent died of (SIGKILL included):
 * on the main thread when its IPC channel closes or its ppid changes (cleanup runs), and from a
 * watchdog thread if the main thread is too busy to notice. Timers and the thread are unref'd, so
 * they never keep the process alive by themselves.
 */
export function exitWithParent(options: ParentWatchOptions = {}): void {
  const parent = options.parent ?? process.ppid;
  const intervalMs = options.intervalMs ?? 500;
  let exiting = false;
  const gone = (): void => {
    if (exiting) return;
    exiting = true;
    try {
      options.onParentGone?.();
    } finally {
      process.exit(0);
    }
  };
  if (process.send !== undefined) {
    if (!process.connected) gone();
    process.once('disconnect', gone);
  }
  setInterval(() => {
    if (process.ppid !== parent) gone();
  }, intervalMs).unref();
  new Worker(PARENT_WATCH_THREAD_SOURCE, {
    eval: true,
    workerData: { parent, intervalMs, graceMs: options.graceMs ?? 2000 },
  }).unref();
}
