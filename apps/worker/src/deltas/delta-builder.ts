import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { DeltaError, DeltaInputError, encodeDelta, type EncodeProgress } from '@ferry/delta';
import { DeltaJobData, DeltaJobResult } from '@ferry/protocol';
import { BlobStore } from '@ferry/storage';

/** The inputs of a delta job are unusable: retrying cannot help. */
export class CorruptDeltaInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptDeltaInputError';
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(path),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback();
      },
    }),
  );
  return `sha256:${hash.digest('hex')}`;
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
): Promise<DeltaJobResult> {
  for (const digest of [...job.bases, job.target]) {
    if ((await store.size(digest)) === null)
      throw new CorruptDeltaInputError(`layer ${digest} is not in the blob store`);
    const actual = await sha256File(store.pathOf(digest));
    if (actual !== digest)
      throw new CorruptDeltaInputError(`stored layer ${digest} is corrupt (its content hashes to ${actual})`);
  }
  const scratch = await store.stagingDir();
  const out = join(scratch, `${randomUUID()}.delta`);
  const started = Date.now();
  try {
    await encodeDelta({
      bases: job.bases.map((digest) => store.pathOf(digest)),
      target: store.pathOf(job.target),
      out,
      tempDir: scratch,
      onProgress,
    });
  } catch (error) {
    await store.discard(scratch);
    if (error instanceof DeltaInputError) throw new CorruptDeltaInputError(error.message);
    if (error instanceof DeltaError) throw new CorruptDeltaInputError(error.message);
    throw error;
  }
  try {
    const size = (await stat(out)).size;
    const encodeMs = Date.now() - started;
    if (size >= job.targetGzipSize) return { kind: 'full', deltaSize: size, encodeMs };
    const digest = await sha256File(out);
    await store.adopt(out, digest);
    return { kind: 'delta', digest, size, encodeMs };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
