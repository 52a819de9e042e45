import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ValidationError, isDigest } from '@ferry/protocol';

/** An inclusive byte range of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/** The digest of written bytes did not match the digest they were announced with. */
export class BlobDigestMismatchError extends ValidationError {}

/**
 * A staging folder in use. Its owner touches it every {@link STAGING_HEARTBEAT_MS} until
 * {@link Staging.discard}, so any process sharing the data folder can tell it from one a crashed
 * process left behind (see {@link BlobStore.sweepTemporaryFiles}).
 */
export interface Staging {
  path: string;
  /** Stops the heartbeat and removes the folder with everything still in it. */
  discard(): Promise<void>;
}

/** How often a live staging folder's modification time is refreshed. */
export const STAGING_HEARTBEAT_MS = 2_000;
/** Below this a sweep could take a live folder whose heartbeat is merely late. */
export const MIN_STAGING_STALE_MS = 5 * STAGING_HEARTBEAT_MS;

/** The hex part of a `sha256:<hex>` digest, after checking that it is one. */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new ValidationError(`not a sha256 digest: ${String(digest)}`);
  return digest.slice(7);
}

/**
 * The blob-store contract (plain TypeScript, shared by server and workers): content-addressed blobs
 * under their `sha256:<hex>` digest, where nothing half-written or unverified is ever visible under
 * a digest. Two implementations: {@link FileBlobStore} (a local folder, the default) and
 * {@link S3BlobStore} (any S3-compatible object store). Both stage work in a local scratch folder
 * (`<scratch>/tmp`, never shared between hosts) kept alive by a heartbeat.
 */
export abstract class BlobStore {
  private readonly tmp: string;
  /** Staging folders opened by this process and not discarded yet. */
  private readonly openStagings = new Set<string>();

  /** @param scratchDir local folder; staging folders live in `scratchDir/tmp`. */
  constructor(scratchDir: string) {
    this.tmp = join(scratchDir, 'tmp');
  }

  /** Where the blobs are, for logs (no credentials). */
  abstract describe(): string;

  /** Size of a stored blob, or null when it is not stored. */
  abstract size(digest: string): Promise<number | null>;

  /**
   * Streams `source` into the store, checking the digest when one is expected (a mismatch throws
   * {@link BlobDigestMismatchError} and stores nothing). Returns digest and size.
   */
  abstract put(source: Readable, expected?: string): Promise<{ digest: string; size: number }>;

  /**
   * Moves an already-hashed local file (in a staging folder of this store) into the store under
   * `digest`; the file is gone afterwards. Bytes that do not hash to `digest` are refused.
   */
  abstract adopt(path: string, digest: string): Promise<void>;

  /** Reads a stored blob, or one inclusive byte range of it. Rejects when it is not stored. */
  abstract open(digest: string, range?: ByteRange): Promise<Readable>;

  abstract delete(digest: string): Promise<void>;

  /**
   * A local file holding the blob's bytes, valid until `staging` is discarded (the encoder's random
   * access), or null when the blob is not stored.
   */
  abstract localFile(digest: string, staging: Staging): Promise<string | null>;

  /**
   * A URL anyone holding it may GET the blob from (Range allowed) for `expiresSeconds`, or null
   * when this store cannot hand out such URLs (then the server proxies).
   */
  presignedUrl(_digest: string, _expiresSeconds: number): Promise<string | null> {
    return Promise.resolve(null);
  }

  /**
   * Removes what killed processes left in the store itself (unfinished multipart uploads and
   * temporary objects older than `staleMs`). Returns how many it removed; the file store has none.
   */
  sweepAbandonedUploads(_staleMs: number): Promise<number> {
    return Promise.resolve(0);
  }

  /**
   * A fresh, empty folder for staging files that may later be adopted, kept alive by a heartbeat
   * until {@link Staging.discard}.
   */
  async openStaging(): Promise<Staging> {
    const path = join(this.tmp, `staging-${randomUUID()}`);
    await mkdir(path, { recursive: true });
    const heartbeat = setInterval(() => {
      const now = new Date();
      // A folder discarded meanwhile has nothing left to keep alive.
      utimes(path, now, now).catch(() => undefined);
    }, STAGING_HEARTBEAT_MS);
    heartbeat.unref();
    this.openStagings.add(path);
    return {
      path,
      discard: async () => {
        clearInterval(heartbeat);
        this.openStagings.delete(path);
        await rm(path, { recursive: true, force: true });
      },
    };
  }

  /**
   * Removes, synchronously, every staging folder this process still has open: for a process about
   * to exit (its parent died) that cannot wait for its builds to discard theirs.
   */
  discardOpenStagingNow(): void {
    for (const path of this.openStagings) rmSync(path, { recursive: true, force: true });
    this.openStagings.clear();
  }

  /**
   * Removes what crashed or killed processes left in the temporary folder: every entry not touched
   * for `staleMs` (live staging folders are touched every {@link STAGING_HEARTBEAT_MS} by their
   * owner, in whichever process sharing this data folder owns them). Returns how many it removed.
   */
  async sweepTemporaryFiles(staleMs: number): Promise<number> {
    if (staleMs < MIN_STAGING_STALE_MS)
      throw new RangeError(
        `staleMs must be at least ${MIN_STAGING_STALE_MS} ms (the heartbeat is late at times)`,
      );
    await mkdir(this.tmp, { recursive: true });
    const cutoff = Date.now() - staleMs;
    let removed = 0;
    for (const name of await readdir(this.tmp)) {
      const path = join(this.tmp, name);
      const info = await stat(path).catch(() => null);
      if (info && info.mtimeMs < cutoff) {
        await rm(path, { recursive: true, force: true });
        removed += 1;
      }
    }
    return removed;
  }
}
