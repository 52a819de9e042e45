import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface WrittenFile {
  path: string;
  /** `sha256:<hex>` of the bytes written. */
  digest: string;
  size: number;
}

export interface WriteHashedOptions {
  /** Keep the first this many bytes in memory (for small JSON members that are parsed later). */
  keepBytes?: number;
  /** Transforms between `source` and the file (a gunzip, a size guard), joined by one pipeline. */
  through?: Transform[];
}

/**
 * Streams `source` (through `through`) into `path` while hashing what reaches the file. Every stage
 * is joined by one `stream.pipeline`, so a failure anywhere destroys them all and closes every file
 * descriptor before the promise settles. The file is fsynced before the promise resolves.
 */
export async function writeHashedFile(
  source: Readable,
  path: string,
  options: WriteHashedOptions = {},
): Promise<WrittenFile & { head: Buffer }> {
  const keepBytes = options.keepBytes ?? 0;
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
  // The file is opened inside the sink and the promise settles only once it is closed again, so a
  // failure racing the open never leaves a file appearing after the caller has cleaned up.
  let handle: FileHandle | undefined;
  let closed!: () => void;
  const whenClosed = new Promise<void>((resolve) => (closed = resolve));
  const sink = new Writable({
    construct(callback) {
      open(path, 'wx', 0o600).then((h) => {
        handle = h;
        callback();
      }, callback);
    },
    write(chunk: Buffer, _encoding, callback) {
      (handle as FileHandle).write(chunk).then(() => callback(), callback);
    },
    final(callback) {
      (handle as FileHandle).sync().then(() => callback(), callback);
    },
    destroy(error, callback) {
      const done = (): void => {
        closed();
        callback(error);
      };
      if (handle) handle.close().then(done, done);
      else done();
    },
  });
  try {
    await pipeline([source, ...(options.through ?? []), tap, sink]);
  } finally {
    await whenClosed;
  }
  return { path, digest: `sha256:${hash.digest('hex')}`, size, head: Buffer.concat(kept) };
}
