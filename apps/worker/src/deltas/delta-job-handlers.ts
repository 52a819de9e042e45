import { Job, UnrecoverableError } from 'bullmq';
import { DeltaJobDataSchema, DeltaJobName, DeltaJobResult, parseWith } from '@ferry/protocol';
import { BlobStore } from '@ferry/storage';
import { CorruptDeltaInputError, DeltaEncoding, MissingDeltaInputError, buildDelta } from './delta-builder';

/** Handles one job of the delta queue, in the sandboxed child, with the worker's blob store. */
export type DeltaJobHandler = (
  store: BlobStore,
  job: Job,
  context: DeltaJobContext,
) => Promise<DeltaJobResult>;

/** What a job runs with, from the worker's configuration. */
export interface DeltaJobContext {
  /** The encoder's memory budget and literal compression (`WORKER_DELTA_*`). */
  encoding?: DeltaEncoding;
  /** The worker's own install, DATA_DIR and queue namespace: named when a job is not for them. */
  install?: { id: string; dataDir: string; queuePrefix: string };
}

/** Handlers by job name. */
export type DeltaJobHandlers = Readonly<Partial<Record<string, DeltaJobHandler>>>;

/** A job name of the queue has no handler: the worker would accept jobs it can never run. */
export class MissingJobHandlerError extends Error {
  constructor(readonly missing: readonly string[]) {
    super(`no handler for delta job ${missing.map((n) => `"${n}"`).join(', ')}: refusing to start`);
    this.name = new.target.name;
  }
}

/**
 * Why a job's blobs may be out of this worker's sight, for its failure message: the job came from
 * another install (two installs share a queue namespace), or this worker's DATA_DIR is not its
 * server's.
 */
function likelyCause(jobInstall: string | undefined, install: DeltaJobContext['install']): string {
  if (!install) return 'this worker does not see the DATA_DIR of the server that queued the job';
  if (jobInstall && jobInstall !== install.id)
    return (
      `the job was queued by install ${jobInstall}, but this worker's DATA_DIR (${install.dataDir}) is install ` +
      `${install.id}'s: two installs share the queue namespace "${install.queuePrefix}" on one Redis ` +
      `(unset FERRY_QUEUE_PREFIX on both, or give each its own)`
    );
  return (
    `this worker's DATA_DIR (${install.dataDir}) is not where its server keeps blobs ` +
    `(mount the server's DATA_DIR on this worker), or the blob was deleted`
  );
}

async function buildDeltaJob(store: BlobStore, job: Job, context: DeltaJobContext): Promise<DeltaJobResult> {
  let data;
  try {
    data = parseWith(DeltaJobDataSchema, job.data, 'delta job');
  } catch (error) {
    throw new UnrecoverableError((error as Error).message);
  }
  const { install } = context;
  if (install && data.installId !== undefined && data.installId !== install.id) {
    // Another install's job is never built here, even when its layers happen to exist: the delta would
    // land in this DATA_DIR, where that install's server never finds it.
    const inputs = [...data.bases, data.target];
    const missing = (
      await Promise.all(inputs.map(async (d) => ((await store.size(d)) === null ? d : null)))
    ).find((d) => d !== null);
    throw new UnrecoverableError(
      `${missing ? `layer ${missing} is not in this worker's blob store` : 'refused'}: ${likelyCause(data.installId, install)}`,
    );
  }
  let last = 0;
  try {
    return await buildDelta(
      store,
      data,
      (progress) => {
        const now = Date.now();
        if (now - last < 500) return;
        last = now;
        void job.updateProgress({ phase: progress.phase, done: progress.done, total: progress.total });
      },
      context.encoding,
    );
  } catch (error) {
    if (error instanceof MissingDeltaInputError)
      throw new UnrecoverableError(
        `${error.role} ${error.digest} is not in this worker's blob store: ${likelyCause(data.installId, install)}`,
      );
    if (error instanceof CorruptDeltaInputError) throw new UnrecoverableError(error.message);
    throw error;
  }
}

/** Every job name of {@link DeltaJobName} and what runs it; checked at boot by {@link checkJobHandlers}. */
export const DELTA_JOB_HANDLERS: DeltaJobHandlers = {
  [DeltaJobName.Build]: buildDeltaJob,
};

/**
 * Throws {@link MissingJobHandlerError} unless every name in `names` has a handler. The worker calls it
 * before it registers the queue, so a job name added to the protocol without a handler stops the boot
 * instead of failing every such job at run time.
 */
export function checkJobHandlers(
  names: readonly string[],
  handlers: DeltaJobHandlers = DELTA_JOB_HANDLERS,
): void {
  const missing = names.filter((name) => typeof handlers[name] !== 'function');
  if (missing.length > 0) throw new MissingJobHandlerError(missing);
}

/** Runs `job` with the handler of its name; a name without one can never succeed, so no retries. */
export async function runDeltaJob(
  store: BlobStore,
  job: Job,
  handlers: DeltaJobHandlers = DELTA_JOB_HANDLERS,
  context: DeltaJobContext = {},
): Promise<DeltaJobResult> {
  const handler = Object.hasOwn(handlers, job.name) ? handlers[job.name] : undefined;
  if (!handler) throw new UnrecoverableError(`no handler for delta job "${job.name}"`);
  return handler(store, job, context);
}
