/**
 * The sandboxed BullMQ processor: BullMQ runs this file in a child process per worker slot, so a
 * crash or out-of-memory while encoding fails the job instead of killing the worker.
 */
import { Job, UnrecoverableError } from 'bullmq';
import { DeltaJobDataSchema, DeltaJobResult, parseWith } from '@ferry/protocol';
import { BlobStore } from '@ferry/storage';
import { loadWorkerConfig } from '../config/worker-config';
import { CorruptDeltaInputError, buildDelta } from './delta-builder';

const store = new BlobStore(loadWorkerConfig(process.env).dataDir);

export default async function processDeltaJob(job: Job): Promise<DeltaJobResult> {
  let data;
  try {
    data = parseWith(DeltaJobDataSchema, job.data, 'delta job');
  } catch (error) {
    throw new UnrecoverableError((error as Error).message);
  }
  let last = 0;
  try {
    return await buildDelta(store, data, (progress) => {
      const now = Date.now();
      if (now - last < 500) return;
      last = now;
      void job.updateProgress({ phase: progress.phase, done: progress.done, total: progress.total });
    });
  } catch (error) {
    if (error instanceof CorruptDeltaInputError) throw new UnrecoverableError(error.message);
    throw error;
  }
}
