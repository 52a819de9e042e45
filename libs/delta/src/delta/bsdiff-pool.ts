import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Runs in the child: bsdiff-node's diffSync, one job per IPC message. */
const CHILD_SOURCE = `
const bsdiff = require(process.argv[1]);
process.on('message', (job) => {
  let error;
  try { bsdiff.diffSync(job.oldFile, job.newFile, job.patchFile); } catch (e) { error = String((e && e.message) || e); }
  process.send({ id: job.id, error });
});
process.on('disconnect', () => process.exit(0));
`;

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
   *   always may run
   */
  constructor(
    private readonly tempDir: string,
    private readonly size = 1,
    private readonly timeoutMs = 300_000,
    private readonly memoryBudget = 320 * 2 ** 20,
  ) {}

  /** BSDIFF40 patch turning `oldData` into `newData`, or undefined when bsdiff failed. */
  async diff(oldData: Buffer, newData: Buffer): Promise<Buffer | undefined> {
    const stem = join(this.tempDir, `bsdiff-${randomBytes(6).toString('hex')}`);
    const job = { oldFile: `${stem}.old`, newFile: `${stem}.new`, patchFile: `${stem}.patch` };
    try {
      await writeFile(job.oldFile, oldData);
      await writeFile(job.newFile, newData);
      const ok = await new Promise<boolean>((resolve) => {
        const cost = 17 * oldData.length + 2 * newData.length + (8 << 20);
        this.queue.push({ ...job, id: this.nextId++, cost, resolve });
        this.pump();
      });
      return ok ? await readFile(job.patchFile) : undefined;
    } finally {
      await Promise.allSettled(Object.values(job).map((file) => unlink(file)));
    }
  }

  private spawnWorker(): Worker {
    const child = spawn(process.execPath, ['-e', CHILD_SOURCE, require.resolve('bsdiff-node')], {
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
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
