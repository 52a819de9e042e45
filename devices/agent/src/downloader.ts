import { createHash } from 'node:crypto';
import { mkdir, open, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DownloadVerifyError, HttpStatusError, WindowWaitError, isDiskFull } from './errors';
import type { DownloadLedger } from './ledger';
import type { Logger } from './log';
import { readBody, type ServerApi } from './server-api';
import { renameDurable, sha256File } from '@ferry/storage/files';
import { writeFileAtomic } from './atomic-file';

/** Bytes written between two fsync + ledger records. */
const FLUSH_BYTES = 256 * 1024;
const FLUSH_MS = 1000;
const MAX_BACKOFF_MS = 256_000;

export interface DownloadOptions {
  attempts: number;
  retryBaseMs: number;
  /** Bytes newly written (for progress reports). */
  onBytes: (added: number) => void;
  /** Called after each chunk is written; may wait (a rate cap) or throw (a download window closed). */
  pace?: (added: number) => Promise<void>;
}

/** Where verified blobs and partial downloads live. */
export function blobPath(dir: string, digest: string): string {
  return join(dir, digest.replace(/^sha256:/, ''));
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Downloads content-addressed blobs with HTTP Range resume: partial files survive restarts,
 * `If-Range` carries the blob's ETag, every blob is checked against its sha256 and size, and
 * failures back off exponentially (2 s, 4 s … 256 s as balena's).
 */
export class Downloader {
  constructor(
    private readonly api: ServerApi,
    private readonly dir: string,
    private readonly ledger: DownloadLedger,
    private readonly log: Logger,
  ) {}

  /** The verified file of `digest`, downloading what is missing. */
  async fetch(digest: string, size: number, options: DownloadOptions): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const final = blobPath(this.dir, digest);
    if ((await sizeOf(final)) === size) {
      if (this.ledger.get(digest).complete) return final;
      // A power cut between the rename and the ledger's record: the file is whole if its digest says so.
      if ((await sha256File(final)) === digest) {
        await this.ledger.complete(digest);
        return final;
      }
      await unlink(final);
    }
    let lastError: Error = new Error('no attempt made');
    for (let attempt = 0; attempt < options.attempts; attempt++) {
      if (attempt > 0) await sleep(Math.min(MAX_BACKOFF_MS, options.retryBaseMs * 2 ** (attempt - 1)));
      try {
        await this.transfer(digest, size, options);
        const part = `${final}.part`;
        const actual = await sha256File(part);
        if (actual !== digest) {
          await unlink(part).catch(() => undefined);
          await this.ledger.reset(digest);
          throw new DownloadVerifyError(`blob ${digest} downloaded as ${actual}`);
        }
        await renameDurable(part, final);
        await this.ledger.complete(digest);
        return final;
      } catch (error) {
        lastError = error as Error;
        if (isDiskFull(error) || error instanceof WindowWaitError) throw error;
        if (
          error instanceof HttpStatusError &&
          (error.status === 404 || error.status === 401 || error.status === 403)
        )
          throw error;
        this.log.warn('download failed', { digest, attempt: attempt + 1, error: lastError.message });
      }
    }
    throw lastError;
  }

  /** Appends the missing bytes of `digest` to its `.part` file. */
  private async transfer(digest: string, size: number, options: DownloadOptions): Promise<void> {
    const part = `${blobPath(this.dir, digest)}.part`;
    const record = this.ledger.get(digest);
    // Bytes beyond the recorded length were never fsynced-and-counted: cut them off.
    const onDisk = await sizeOf(part);
    if (onDisk === null) {
      if (record.done > 0) await this.ledger.reset(digest);
    } else if (onDisk !== record.done || record.done > size) {
      if (onDisk < record.done || record.done > size) {
        await this.ledger.reset(digest);
        await truncate(part, 0);
      } else await truncate(part, record.done);
    }
    let offset = this.ledger.get(digest).done;
    if (offset === size) return;
    const res = await this.api.openBlob(digest, offset);
    if (res.statusCode === 200 && offset > 0) {
      // The server ignored the range (If-Range did not match): start over.
      offset = 0;
      await this.ledger.reset(digest);
    } else if (res.statusCode === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
      if (!range || Number(range[1]) !== offset || Number(range[3]) !== size) {
        res.resume();
        await this.ledger.reset(digest);
        throw new DownloadVerifyError(
          `blob ${digest}: unexpected Content-Range ${res.headers['content-range']}`,
        );
      }
    } else if (res.statusCode !== 200) {
      // An error page is read only so far: a server answering an endless one must not fill memory.
      const text = await readBody(res, 64 * 1024).catch((error: Error) => error.message);
      throw new HttpStatusError(
        `GET blob ${digest}: ${res.statusCode} ${text.slice(0, 200)}`,
        res.statusCode ?? 0,
      );
    }
    const fh = await open(part, offset === 0 ? 'w' : 'r+');
    let position = offset;
    let unsynced = 0;
    let lastFlush = Date.now();
    const flush = async (): Promise<void> => {
      if (unsynced === 0) return;
      await fh.sync();
      const added = unsynced;
      unsynced = 0;
      lastFlush = Date.now();
      await this.ledger.advance(digest, position, added);
    };
    try {
      for await (const chunk of res) {
        const buf = chunk as Buffer;
        if (position + buf.length > size)
          throw new DownloadVerifyError(`blob ${digest} is longer than ${size} bytes`);
        await fh.write(buf, 0, buf.length, position);
        position += buf.length;
        unsynced += buf.length;
        options.onBytes(buf.length);
        if (unsynced >= FLUSH_BYTES || Date.now() - lastFlush >= FLUSH_MS) await flush();
        await options.pace?.(buf.length);
      }
      await flush();
    } catch (error) {
      // A dropped link: what arrived is kept (the final sha256 check covers it) and resumed from.
      if (!isDiskFull(error)) await flush().catch(() => undefined);
      throw error;
    } finally {
      await fh.close();
    }
    if (position !== size)
      throw new DownloadVerifyError(`blob ${digest} ended after ${position} of ${size} bytes`);
  }
}

/** Fetches a small blob of unknown size (an image config) whole, checking its sha256. */
export async function fetchSmallBlob(api: ServerApi, dir: string, digest: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const final = blobPath(dir, digest);
  if ((await sizeOf(final)) !== null && (await sha256File(final)) === digest) return final;
  const res = await api.openBlob(digest, 0);
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length > 4 * 1024 * 1024) throw new DownloadVerifyError(`config blob ${digest} is larger than 4 MiB`);
  }
  if (res.statusCode !== 200)
    throw new HttpStatusError(`GET blob ${digest}: ${res.statusCode}`, res.statusCode ?? 0);
  const body = Buffer.concat(chunks);
  const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (actual !== digest) throw new DownloadVerifyError(`config blob ${digest} downloaded as ${actual}`);
  await writeFileAtomic(final, body, 0o644);
  return final;
}
