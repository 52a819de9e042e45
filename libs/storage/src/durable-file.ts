/**
 * Files that survive a crash at any instant, and file digests. Node built-ins only (no zod, no
 * framework, no native addon): the device agent bundles this file by itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** fsyncs a directory so that a rename or a new name inside it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs an already written file. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Moves an already written file to `path` durably: the file is fsynced, renamed, and the folder of
 * `path` fsynced, so after a crash `path` holds the old content or the whole new one.
 */
export async function renameDurable(temp: string, path: string): Promise<void> {
  await syncFile(temp);
  await rename(temp, path);
  await syncDir(dirname(path));
}

/** A unique temporary name beside `path`, in the same folder (so a rename or link stays atomic). */
function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Creates `file` (which must not exist) with `data` and mode `mode` exactly, fsynced. */
async function writeSynced(file: string, data: string | Buffer, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `path` so that after a crash at any instant the file holds either its old or its
 * new content: a temporary file with a unique name beside it (mode `mode`, exactly, whatever the
 * umask), fsynced, renamed over `path`, then the folder fsynced. The temporary file never outlives
 * a failure.
 */
export async function writeFileDurable(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const temp = tempBeside(path);
  try {
    await writeSynced(temp, data, mode);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dirname(path));
}

/**
 * Creates `path` with `data` durably unless it exists: the content is written and fsynced under a
 * temporary name, then hard-linked to `path` (which fails if `path` exists, so of two processes racing
 * to create it exactly one wins and both then read the winner's content), and the folder fsynced.
 * Returns whether this call created it. `path` never exists half-written.
 */
export async function createFileDurable(path: string, data: string | Buffer, mode = 0o600): Promise<boolean> {
  const temp = tempBeside(path);
  try {
    await writeSynced(temp, data, mode);
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dirname(path));
  return true;
}

/** `sha256:<hex>` of a file's content, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
