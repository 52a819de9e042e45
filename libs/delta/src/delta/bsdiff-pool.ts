import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PARENT_WATCH_THREAD_SOURCE } from './parent-watch';

/**
 * Runs in the child: bsdiff-node's diffSync, one job per IPC message. diffSync holds the child's
 * only thread for as long as a diff takes, so a watchdog thread kills the child as soon as its
 * parent is gone (argv[2] is the parent's pid) instead of letting an orphan finish a diff nobody
 * will read.
 */
const CHILD_SOURCE = `
const { Worker } = require('node:worker_threads');
new Worker(${JSON.stringify(PARENT_WATCH_THREAD_SOURCE)}, {
  eval: true,
  workerData: { parent: Number(process.argv[2]), intervalMs: 500, graceMs: 0 },
}).unref();
const bsdiff = require(process.argv[1]);
process.on('message', (job) => {
  let error;
  try { bsdiff.diffSync(job.oldFile, job.newFile, job.patchFile); } catch (e) { error = String((e && e.message) || e); }
  process.send({ id: job.id, error });
});
process.on('disconnect', () => process.exit(0));
`;

/** Every live bsdiff child of this process: killed when this process exits, however it exits. */
const children = new Set<ChildProcess>();
let killOnExit = false;

function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (killOnExit) return;
  killOnExit = true;
  process.once('exit', () => {
    for (const running of children) running.kill('SIGKILL');
  });
}

interface Job {
  id: number;
  /** Estimated peak memory of the child for this job. */
  cost: number;
  oldFile: string;
  newFile: string;
  patchFile: string;
  resolve: (ok: boolean) => void;
}

interface Worker {
  child: ChildProcess;
  job?: Job;
  timer?: NodeJS.Timeout;
}

/**
 * A small pool of child processes running bsdiff-node's `diffSync`: the native diff needs
 * about 17x the old file in memory and can crash, so it never runs in the caller's process.
 * A failed, crashed or timed-out job resolves to `undefined` and the caller falls back.
 */
export class BsdiffPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Set<Worker>();
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;
  private running = 0;

  /**
   * @param size - child processes at most
   * @param timeoutMs - a job running longer is killed and reported as failed
   * @param memoryBudget - jobs start only while the estimated memory of running jobs
   *   (about 17x the old file each, as measured for bsdiff-node) stays under this; one job
   *   always may run, unless `strict`
   * @param strict - a job whose own estimate exceeds the budget fails at once (the caller falls
   *   back to another encoding) instead of running alone
   */
  constructor(
    private readonly tempDir: string,
    private readonly size = 1,
    private readonly timeoutMs = 300_000,
    private readonly memoryBudget = 320 * 2 ** 20,
    private readonly strict = false,
  ) {}

  /** BSDIFF40 patch turning `oldData` into `newData`, or undefined when bsdiff failed. */
  async diff(oldData: Buffer, newData: Buffer): Promise<Buffer | undefined> {
    if (this.strict && BsdiffPool.cost(oldData.length, newData.length) > this.memoryBudget) return undefined;
    const stem = join(this.tempDir, `bsdiff-${randomBytes(6).toString('hex')}`);
    const job = { oldFile: `${stem}.old`, newFile: `${stem}.new`, patchFile: `${stem}.patch` };
    try {
      await writeFile(job.oldFile, oldData);
      await writeFile(job.newFile, newData);
      const ok = await new Promise<boolean>((resolve) => {
        const cost = BsdiffPool.cost(oldData.length, newData.length);
        this.queue.push({ ...job, id: this.nextId++, cost, resolve });
        this.pump();
      });
      return ok ? await readFile(job.patchFile) : undefined;
    } finally {
      await Promise.allSettled(Object.values(job).map((file) => unlink(file)));
    }
  }

  /** Estimated peak memory of a bsdiff child for these input sizes. */
  static cost(oldLength: number, newLength: number): number {
    return 17 * oldLength + 2 * newLength + (8 << 20);
  }

  private spawnWorker(): Worker {
    const child = spawn(
      process.execPath,
      ['-e', CHILD_SOURCE, require.resolve('bsdiff-node'), String(process.pid)],
      { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] },
    );
    track(child);
    const worker: Worker = { child };
    child.on('message', (message: { id: number; error?: string }) => {
      if (worker.job?.id === message.id) this.finish(worker, message.error === undefined, true);
    });
    child.on('exit', () => this.finish(worker, false, false));
    child.on('error', () => this.finish(worker, false, false));
    return worker;
  }

  private finish(worker: Worker, ok: boolean, alive: boolean): void {
    const job = worker.job;
    if (job) this.running -= job.cost;
    clearTimeout(worker.timer);
    worker.job = undefined;
    this.busy.delete(worker);
    if (alive && !this.closed) this.idle.push(worker);
    else {
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    }
    job?.resolve(ok);
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      if (this.busy.size > 0 && this.running + this.queue[0]!.cost > this.memoryBudget) return;
      let worker = this.idle.pop();
      if (!worker) {
        if (this.busy.size >= this.size) return;
        worker = this.spawnWorker();
      }
      const job = this.queue.shift()!;
      this.running += job.cost;
      worker.job = job;
      this.busy.add(worker);
      const w = worker;
      w.timer = setTimeout(() => this.finish(w, false, false), this.timeoutMs);
      w.child.send({ id: job.id, oldFile: job.oldFile, newFile: job.newFile, patchFile: job.patchFile });
    }
  }

  /** Stops every child; pending jobs resolve as failed. */
  close(): void {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.resolve(false);
    this.running = 0;
    for (const worker of [...this.idle, ...this.busy]) {
      clearTimeout(worker.timer);
      worker.job?.resolve(false);
      worker.job = undefined;
      worker.child.kill('SIGKILL');
    }
    this.idle.length = 0;
    this.busy.clear();
  }
}
