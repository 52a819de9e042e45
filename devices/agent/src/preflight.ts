import { freemem } from 'node:os';
import * as fsp from 'node:fs/promises';
import { PreflightError } from './errors';

export interface PreflightNeeds {
  /** Bytes the update will write under the data directory. */
  diskBytes: number;
  /** Free memory the update needs. */
  memoryBytes: number;
}

/** Free bytes on the filesystem of `dir` (statfs, Node 18.15+); null where the runtime lacks it. */
export async function freeDisk(dir: string): Promise<number | null> {
  const statfs = (fsp as { statfs?: (path: string) => Promise<{ bavail: number; bsize: number }> }).statfs;
  if (!statfs) return null;
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Checks disk and memory before the first byte is fetched, so a short device defers the update
 * (and says why) instead of failing halfway with a full disk (balena-supervisor #674).
 */
export async function preflight(dataDir: string, needs: PreflightNeeds): Promise<void> {
  const disk = await freeDisk(dataDir);
  if (disk !== null && disk < needs.diskBytes)
    throw new PreflightError(
      `not enough disk in ${dataDir}: ${mb(disk)} free, the update needs ${mb(needs.diskBytes)}`,
    );
  const memory = freemem();
  if (memory < needs.memoryBytes)
    throw new PreflightError(
      `not enough free memory: ${mb(memory)} free, the update needs ${mb(needs.memoryBytes)}`,
    );
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
