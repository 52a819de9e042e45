/**
 * The sandboxed BullMQ processor: BullMQ runs this file in a child process per worker slot, so a
 * crash or out-of-memory while encoding fails the job instead of killing the worker. Which code runs a
 * job is decided by its name (delta-job-handlers.ts).
 */
import { Job } from 'bullmq';
import { exitWithParent } from '@ferry/delta';
import { DeltaJobResult } from '@ferry/protocol';
import { createBlobStore } from '@ferry/storage';
import { loadSandboxConfig } from '../config/worker-config';
import { DELTA_JOB_HANDLERS, runDeltaJob } from './delta-job-handlers';

const config = loadSandboxConfig(process.env);
const store = createBlobStore(config.blobs, config.dataDir);

// A worker killed outright (SIGKILL, OOM killer) cannot stop this child, and BullMQ's child only
// finishes its job on SIGTERM: without this an orphan kept encoding (80 % CPU, GBs of memory) for a
// job the stalled-job check had already handed to another worker.
exitWithParent({ onParentGone: () => store.discardOpenStagingNow() });

export default function processDeltaJob(job: Job): Promise<DeltaJobResult> {
  return runDeltaJob(store, job, DELTA_JOB_HANDLERS, {
    encoding: { memoryBudget: config.deltaMemoryBytes, literalStrongLimit: config.deltaStrongLiteralBytes },
    install: { id: config.installId, dataDir: config.dataDir, queuePrefix: config.queuePrefix },
  });
}
