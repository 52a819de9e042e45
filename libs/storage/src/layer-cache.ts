import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Staging, digestHex } from './blob-store';
import { DigestCheck } from './digest-check';
import { renameDurable } from './durable-file';

/** A download left by a killed process is removed after this long. */
const STALE_PART_MS = 60 * 60 * 1000;

/**
 * A bounded local cache of blobs fetched from a remote store, for the delta encoder's random access:
 * least recently used files are evicted once the total passes `capBytes`. Every file in it was
 * verified against its digest on the way in. A job gets a hard link in its own staging folder, so
 * an eviction (by this or another process sharing the folder) never pulls a file from under a
 * running encoder; its disk space is freed when the job's staging folder is discarded.
 */
export class LayerCache {
  constructor(
    readonly dir: string,
    readonly capBytes: number,
  ) {}

  /**
   * The blob `digest` as a file in `staging`, from the cache or fetched with `open` (then cached).
   * Resolves to null when `open` resolves to null (the blob is not stored).
   */
  async file(digest: string, staging: Staging, open: () => Promise<Readable | null>): Promise<string | null> {
    const hex = digestHex(digest);
    const cached = join(this.dir, hex);
    const pinned = join(staging.path, `cached-${hex}`);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.pin(cached, pinned)) return pinned;
      const source = await open();
      if (source === null) return null;
      await this.fill(digest, cached, source);
      // Another process may evict it between fill and pin: then it is fetched again.
      if (await this.pin(cached, pinned)) {
        await this.evict(cached);
        return pinned;
      }
    }
    throw new Error(
      `layer cache ${this.dir}: ${digest} was evicted three times before use (cache too small?)`,
    );
  }

  /** Bytes the cache holds now (cached files only). */
  async usedBytes(): Promise<number> {
    return (await this.entries()).reduce((sum, e) => sum + e.size, 0);
  }

  private async pin(cached: string, pinned: string): Promise<boolean> {
    try {
      await link(cached, pinned);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code === 'EEXIST') return true;
      if (code !== 'EXDEV' && code !== 'EPERM') throw error;
      try {
        await copyFile(cached, pinned);
      } catch (copyError) {
        if ((copyError as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw copyError;
      }
    }
    const now = new Date();
    await utimes(cached, now, now).catch(() => undefined);
    return true;
  }

  private async fill(digest: string, cached: string, source: Readable): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const part = join(this.dir, `.${digestHex(digest)}.${randomUUID()}.part`);
    try {
      await pipeline(source, new DigestCheck(digest), createWriteStream(part, { flags: 'wx', mode: 0o644 }));
      await renameDurable(part, cached);
    } finally {
      await rm(part, { force: true });
    }
  }

  private async entries(): Promise<{ path: string; size: number; mtimeMs: number; part: boolean }[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const found = await Promise.all(
      names.map(async (name) => {
        const path = join(this.dir, name);
        const info = await stat(path).catch(() => null);
        return info?.isFile()
          ? { path, size: info.size, mtimeMs: info.mtimeMs, part: name.startsWith('.') }
          : null;
      }),
    );
    return found.filter((e) => e !== null);
  }

  /** Removes least recently used files until the cache fits its cap; `keep` is never taken. */
  private async evict(keep: string): Promise<void> {
    const all = await this.entries();
    for (const e of all)
      if (e.part && e.mtimeMs < Date.now() - STALE_PART_MS) await rm(e.path, { force: true });
    const files = all.filter((e) => !e.part).sort((a, b) => a.mtimeMs - b.mtimeMs);
    let total = files.reduce((sum, e) => sum + e.size, 0);
    for (const e of files) {
      if (total <= this.capBytes) break;
      if (e.path === keep) continue;
      await rm(e.path, { force: true });
      total -= e.size;
    }
  }
}
