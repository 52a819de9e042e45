import { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnReady } from './spawn-ready';

const WORKER_MAIN = join(__dirname, '..', '..', 'apps', 'worker', 'dist', 'main.js');

/** A real delta worker process (built by `npm run build`), in its own process group. */
export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** SIGKILL to the whole process group: the worker and its sandboxed encoders. */
  kill: () => Promise<void>;
  /** SIGKILL to the worker process alone, as the OOM killer or `kill -9 <pid>` would: its children stay. */
  killAlone: () => Promise<void>;
  stop: () => Promise<void>;
}

export async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const worker = await spawnReady(
    WORKER_MAIN,
    { ...process.env, LOG_FORMAT: 'json', ...env },
    'Ferry worker started',
    { detached: true, timeoutMs: 50_000 },
  );
  return {
    child: worker.child,
    output: worker.output,
    kill: () => worker.signal('SIGKILL'),
    killAlone: () => worker.signal('SIGKILL', false),
    stop: () => worker.signal('SIGTERM'),
  };
}
