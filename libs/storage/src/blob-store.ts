import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ValidationError, isDigest } from '@ferry/protocol';

/** An inclusive byte range of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/** The digest of written bytes did not match the digest they were announced with. */
export class BlobDigestMismatchError extends ValidationError {}

/**
 * Content-addressed blob store (plain TypeScript, shared by server and workers) under `DATA_DIR/blobs/sha256/xx/<hex>`. Writes go to a temporary file
 * in `DATA_DIR/tmp` (same filesystem), are hashed on the way, fsynced, then renamed into place: a
 * reader never sees a half-written blob, and a crash leaves only temporary files.
 */
export class BlobStore {
  private readonly root: string;
  private readonly tmp: string;

  /** @param dataDir the data folder; blobs live in `dataDir/blobs`, temporary files in `dataDir/tmp`. */
  constructor(dataDir: string) {
    this.root = join(dataDir, 'blobs');
    this.tmp = join(dataDir, 'tmp');
  }

  pathOf(digest: string): string {
    if (!isDigest(digest)) throw new ValidationError(`not a sha256 digest: ${String(digest)}`);
    const hex = digest.slice(7);
    return join(this.root, 'sha256', hex.slice(0, 2), hex);
  }

  /** Size of a stored blob, or null when it is not stored. */
  async size(digest: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(digest))).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /** A fresh, empty folder for staging files that may later be adopted. Remove it with {@link discard}. */
  async stagingDir(): Promise<string> {
    const dir = join(this.tmp, `staging-${randomUUID()}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async discard(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
  }

  /**
   * Moves an already-hashed file (on the same filesystem) into the store under `digest`. The caller
   * computed the digest while writing the file; it is fsynced here before the rename.
   */
  async adopt(path: string, digest: string): Promise<void> {
    const target = this.pathOf(digest);
    if ((await this.size(digest)) !== null) return;
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await mkdir(dirname(target), { recursive: true });
    await rename(path, target);
    await this.syncDir(dirname(target));
  }

  /** Streams `source` into the store, checking the digest when one is expected. Returns digest and size. */
  async put(source: Readable, expected?: string): Promise<{ digest: string; size: number }> {
    await mkdir(this.tmp, { recursive: true });
    const temp = join(this.tmp, `blob-${randomUUID()}`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        size += chunk.length;
        callback(null, chunk);
      },
    });
    try {
      await pipeline(source, tap, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
      const digest = `sha256:${hash.digest('hex')}`;
      if (expected !== undefined && expected !== digest) {
        throw new BlobDigestMismatchError(`blob content has digest ${digest}, expected ${expected}`);
      }
      await this.adopt(temp, digest);
      return { digest, size };
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Reads a stored blob, or one inclusive byte range of it. */
  read(digest: string, range?: ByteRange): Readable {
    return createReadStream(this.pathOf(digest), range ? { start: range.start, end: range.end } : {});
  }

  async delete(digest: string): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  /**
   * Removes temporary files left by a crash. Only those older than `olderThanMs`: another server
   * process sharing DATA_DIR may be writing the younger ones.
   */
  async sweepTemporaryFiles(olderThanMs = 3_600_000): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
    const cutoff = Date.now() - olderThanMs;
    for (const name of await readdir(this.tmp)) {
      const path = join(this.tmp, name);
      const info = await stat(path).catch(() => null);
      if (info && info.mtimeMs < cutoff) await rm(path, { recursive: true, force: true });
    }
  }

  private async syncDir(dir: string): Promise<void> {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
