import { readFile } from 'node:fs/promises';

// One durable-file implementation for server, CLI, worker and agent (zod-free, bundled as is).
export { syncDir, writeFileDurable as writeFileAtomic } from '@ferry/storage/files';

/** Reads a JSON file, or returns null when it does not exist. */
export async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
