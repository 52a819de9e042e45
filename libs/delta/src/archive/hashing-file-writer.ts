import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface WrittenFile {
  path: string;
  /** `sha256:<hex>` of the bytes written. */
  digest: string;
  size: number;
}

/**
 * Streams `source` into `path` while hashing it, and keeps the first `keepBytes` bytes in memory
 * (for small JSON members that are parsed later). The file is fsynced before the promise resolves.
 */
export async function writeHashedFile(
  source: Readable | AsyncIterable<Buffer>,
  path: string,
  keepBytes = 0,
): Promise<WrittenFile & { head: Buffer }> {
  const hash = createHash('sha256');
  let size = 0;
  const kept: Buffer[] = [];
  let keptSize = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      if (keptSize < keepBytes) {
        const slice = chunk.subarray(0, keepBytes - keptSize);
        kept.push(Buffer.from(slice));
        keptSize += slice.length;
      }
      callback(null, chunk);
    },
  });
  const out = createWriteStream(path, { flags: 'wx', mode: 0o600, flush: true });
  await pipeline(source, tap, out);
  return { path, digest: `sha256:${hash.digest('hex')}`, size, head: Buffer.concat(kept) };
}
