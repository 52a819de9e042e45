import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError } from '@ferry/protocol';
import { BlobDigestMismatchError, BlobStore, ByteRange, Staging, digestHex } from './blob-store';
import { DigestCheck } from './digest-check';
import { renameDurable, sha256File } from './durable-file';

/**
 * The local-filesystem blob store (the default), under `DATA_DIR/blobs/sha256/xx/<hex>`. Writes go to
 * a temporary file in `DATA_DIR/tmp` (same filesystem), are hashed on the way, fsynced, then renamed
 * into place: a reader never sees a half-written blob, and a crash leaves only temporary files.
 */
export class FileBlobStore extends BlobStore {
  private readonly root: string;

  /** @param dataDir the data folder; blobs live in `dataDir/blobs`, temporary files in `dataDir/tmp`. */
  constructor(dataDir: string) {
    super(dataDir);
    this.root = join(dataDir, 'blobs');
  }

  describe(): string {
    return this.root;
  }

  pathOf(digest: string): string {
    const hex = digestHex(digest);
    return join(this.root, 'sha256', hex.slice(0, 2), hex);
  }

  async size(digest: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(digest))).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  /**
   * Checks the file's bytes against `digest` (bit rot in staging, a caller's mistake), then fsyncs
   * and renames it into place.
   */
  async adopt(path: string, digest: string): Promise<void> {
    const target = this.pathOf(digest);
    if ((await this.size(digest)) !== null) {
      await rm(path, { force: true });
      return;
    }
    const actual = await sha256File(path);
    if (actual !== digest)
      throw new BlobDigestMismatchError(`blob content has digest ${actual}, expected ${digest}`);
    await mkdir(dirname(target), { recursive: true });
    await renameDurable(path, target);
  }

  async put(source: Readable, expected?: string): Promise<{ digest: string; size: number }> {
    if (expected !== undefined) digestHex(expected);
    const staging = await this.openStaging();
    const temp = join(staging.path, 'blob');
    const check = new DigestCheck(expected);
    try {
      await pipeline(source, check, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
      const digest = check.digest as string;
      if ((await this.size(digest)) === null) {
        await mkdir(dirname(this.pathOf(digest)), { recursive: true });
        await renameDurable(temp, this.pathOf(digest));
      }
      return { digest, size: check.bytes };
    } finally {
      await staging.discard();
    }
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(digest);
    if ((await this.size(digest)) === null) throw new NotFoundError(`no blob ${digest}`);
    return createReadStream(path, range ? { start: range.start, end: range.end } : {});
  }

  async delete(digest: string): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  /** The stored file itself: blobs are never rewritten in place, so no copy is needed. */
  async localFile(digest: string, _staging: Staging): Promise<string | null> {
    return (await this.size(digest)) === null ? null : this.pathOf(digest);
  }
}
