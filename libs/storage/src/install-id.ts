import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createFileDurable } from './durable-file';

/**
 * The identity of one Ferry install: created in its `DATA_DIR` on first start (by the server or a
 * worker, whichever starts first) and the same for every process that shares that folder. It names
 * the install's Redis namespaces by default (queue `ferry-<id>`, keys `ferry:<id>:`), so two installs
 * on one Redis never take each other's jobs, leases, events or broker state.
 */
export const INSTALL_ID_FILE = 'install-id';

const INSTALL_ID = /^[0-9a-f]{16}$/;

/** `DATA_DIR/install-id` exists but does not hold an install id. */
export class InstallIdError extends Error {
  constructor(file: string, content: string) {
    super(
      `${file} does not hold a Ferry install id (16 hex digits) but ${JSON.stringify(content.slice(0, 40))}: ` +
        `restore it from a backup, or delete it to make this DATA_DIR a new install`,
    );
    this.name = new.target.name;
  }
}

function parse(file: string, content: string): string {
  const id = content.trim();
  if (!INSTALL_ID.test(id)) throw new InstallIdError(file, content);
  return id;
}

/** The install id kept in `dataDir`, or null when there is none yet. */
export async function readInstallId(dataDir: string): Promise<string | null> {
  const file = join(dataDir, INSTALL_ID_FILE);
  try {
    return parse(file, await readFile(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** {@link readInstallId} for code that cannot wait (a sandboxed job processor at load). */
export function readInstallIdSync(dataDir: string): string | null {
  const file = join(dataDir, INSTALL_ID_FILE);
  try {
    return parse(file, readFileSync(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * The install id of `dataDir`, created (durably, exactly once even when processes race) when the
 * folder has none.
 */
export async function ensureInstallId(dataDir: string): Promise<{ id: string; created: boolean }> {
  const existing = await readInstallId(dataDir);
  if (existing) return { id: existing, created: false };
  await mkdir(dataDir, { recursive: true });
  const created = await createFileDurable(
    join(dataDir, INSTALL_ID_FILE),
    `${randomBytes(8).toString('hex')}\n`,
    0o644,
  );
  const id = await readInstallId(dataDir);
  if (!id) throw new Error(`${join(dataDir, INSTALL_ID_FILE)} vanished right after it was created`);
  return { id, created };
}

/** The queue namespace (`FERRY_QUEUE_PREFIX`) of an install that sets none. */
export function defaultQueuePrefix(installId: string): string {
  return `ferry-${installId}`;
}

/** The key prefix (`REDIS_PREFIX`) of an install that sets none. */
export function defaultRedisPrefix(installId: string): string {
  return `ferry:${installId}:`;
}

/**
 * The Redis key where the server records which install a queue namespace belongs to; a worker reads
 * it at start to check that its DATA_DIR is that install's.
 */
export function queueOwnerKey(queuePrefix: string): string {
  return `${queuePrefix}:install`;
}
