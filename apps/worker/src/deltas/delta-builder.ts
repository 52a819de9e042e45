import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { DeltaError, DeltaInputError, encodeDelta, type EncodeProgress } from '@ferry/delta';
import { DeltaJobData, DeltaJobResult } from '@ferry/protocol';
import { BlobDigestMismatchError, BlobStore, sha256File } from '@ferry/storage';

/** The inputs of a delta job are unusable: retrying cannot help. */
export class CorruptDeltaInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptDeltaInputError';
  }
}

/** An input layer of a delta job is not in the worker's blob store. */
export class MissingDeltaInputError extends CorruptDeltaInputError {
  constructor(
    readonly digest: string,
    /** Which input it is, e.g. `base layer 1 of 2` or `target layer`. */
    readonly role: string,
  ) {
    super(`${role} ${digest} is not in the blob store`);
    this.name = 'MissingDeltaInputError';
  }
}

/** The worker's settings of the encoder (`WORKER_DELTA_MEMORY_MB`, `WORKER_DELTA_STRONG_LITERAL_MB`). */
export interface DeltaEncoding {
  memoryBudget?: number;
  literalStrongLimit?: number;
}

/**
 * Builds one layer delta: checks that every input blob exists and matches its digest, encodes the
 * target against the bases, and stores the delta as a blob — or reports that the full layer is the
 * better download when the delta is not smaller than the gzip'd layer.
 */
export async function buildDelta(
  store: BlobStore,
  job: DeltaJobData,
  onProgress: (progress: EncodeProgress) => void = () => undefined,
  encoding: DeltaEncoding = {},
): Promise<DeltaJobResult> {
  const scratch = await store.openStaging();
  const out = join(scratch.path, `${randomUUID()}.delta`);
  const started = Date.now();
  try {
    // Local files of the inputs: the stored files themselves (file store) or copies from the layer
    // cache (object store), each checked against its digest.
    const local = new Map<string, string>();
    const inputs = [
      ...job.bases.map((digest, i) => ({ digest, role: `base layer ${i + 1} of ${job.bases.length}` })),
      { digest: job.target, role: 'target layer' },
    ];
    for (const { digest, role } of inputs) {
      const path = await store.localFile(digest, scratch).catch((error: unknown) => {
        if (error instanceof BlobDigestMismatchError)
          throw new CorruptDeltaInputError(`stored layer ${digest} is corrupt (${error.message})`);
        throw error;
      });
      if (path === null) throw new MissingDeltaInputError(digest, role);
      const actual = await sha256File(path);
      if (actual !== digest)
        throw new CorruptDeltaInputError(
          `stored layer ${digest} is corrupt (its content hashes to ${actual})`,
        );
      local.set(digest, path);
    }
    await encodeDelta({
      bases: job.bases.map((digest) => local.get(digest) as string),
      target: local.get(job.target) as string,
      out,
      tempDir: scratch.path,
      onProgress,
      ...encoding,
    });
    const size = (await stat(out)).size;
    const encodeMs = Date.now() - started;
    if (size >= job.targetGzipSize) return { kind: 'full', deltaSize: size, encodeMs };
    const digest = await sha256File(out);
    await store.adopt(out, digest);
    return { kind: 'delta', digest, size, encodeMs };
  } catch (error) {
    if (error instanceof DeltaInputError) throw new CorruptDeltaInputError(error.message);
    if (error instanceof DeltaError) throw new CorruptDeltaInputError(error.message);
    throw error;
  } finally {
    await scratch.discard();
  }
}
