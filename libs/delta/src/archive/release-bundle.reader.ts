import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import { FerryError, PayloadTooLargeError, UnusableArchiveError, isDiskFullError } from '@ferry/protocol';
import { ArchiveLimits } from './archive-limits';
import { SourceClosedError, borrowStream } from './borrowed-stream';
import { byteLimit, tooLarge } from './byte-limit';
import { ImageArchive, readImageArchive } from './image-archive.reader';
import { safeMemberName } from './member-name';
import { settleAll } from './settle-all';

/** Media type of a release bundle: a tar of one compose file and one or more image archives. */
export const RELEASE_BUNDLE_TYPE = 'application/vnd.ferry.release+tar';

/** Names the compose file may have inside a bundle (as Docker Compose looks for them). */
export const COMPOSE_FILE_NAMES = [
  'compose.yaml',
  'compose.yml',
  'docker-compose.yaml',
  'docker-compose.yml',
];

/** Largest compose file accepted. */
export const MAX_COMPOSE_BYTES = 256 * 1024;

export interface ReleaseBundle {
  /** The compose file's bytes (YAML). */
  compose: Buffer;
  /** Every image archive of the bundle, read and verified as {@link readImageArchive} does. */
  archives: ImageArchive[];
}

/**
 * Reads a release bundle (docs/compose.md): a plain tar whose members are the compose file (one of
 * {@link COMPOSE_FILE_NAMES}) and image archives (`docker save` or OCI, each optionally gzip'd). Each
 * archive is staged to disk whole, then read and verified on its own; the same limits apply to each
 * and the bundle as a whole may not exceed `limits.maxArchiveBytes`. `input` is never destroyed.
 */
export async function readReleaseBundle(
  input: Readable,
  stagingDir: string,
  limits: ArchiveLimits,
  options: { idleTimeoutMs?: number } = {},
): Promise<ReleaseBundle> {
  await mkdir(stagingDir, { recursive: true });
  const parser = extract();
  let compose: Buffer | null = null;
  const staged: { name: string; path: string }[] = [];
  let current: Readable | undefined;
  const consume = (async () => {
    for await (const entry of parser) {
      current = entry as unknown as Readable;
      const { header } = entry;
      const name = safeMemberName(header.name);
      if (name === null)
        throw new UnusableArchiveError(
          `unsafe member name in release bundle: ${JSON.stringify(header.name)}`,
        );
      if (header.type === 'directory') {
        entry.resume();
        continue;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file')
        throw new UnusableArchiveError(`release bundle member ${name} is a ${header.type}, not a file`);
      if (COMPOSE_FILE_NAMES.includes(name)) {
        if (compose)
          throw new UnusableArchiveError(`release bundle has more than one compose file (${name})`);
        if ((header.size ?? 0) > MAX_COMPOSE_BYTES)
          throw new PayloadTooLargeError(`compose file ${name} is larger than ${MAX_COMPOSE_BYTES} bytes`, {
            limit: MAX_COMPOSE_BYTES,
          });
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        compose = Buffer.concat(chunks);
        continue;
      }
      if (staged.length >= limits.maxImages)
        throw new PayloadTooLargeError(
          `release bundle holds more than ${limits.maxImages} archives (FERRY_MAX_IMAGES_PER_RELEASE)`,
          { limit: limits.maxImages },
        );
      const path = join(stagingDir, `bundle-member-${staged.length}`);
      await pipeline(entry as unknown as Readable, createWriteStream(path));
      staged.push({ name, path });
    }
  })();
  const pumped = pipeline(
    borrowStream(input, options),
    byteLimit(limits.maxArchiveBytes, tooLarge(limits.maxArchiveBytes)),
    parser,
  ).catch((error: unknown) => {
    current?.destroy(error as Error);
    parser.destroy(error as Error);
    throw error;
  });
  try {
    await settleAll([consume, pumped]);
  } catch (error) {
    if (error instanceof FerryError || isDiskFullError(error) || error instanceof SourceClosedError)
      throw error;
    throw new UnusableArchiveError(`release bundle is not a readable tar: ${(error as Error).message}`);
  }
  if (!compose)
    throw new UnusableArchiveError(`release bundle has no compose file (${COMPOSE_FILE_NAMES.join(', ')})`);
  if (staged.length === 0) throw new UnusableArchiveError('release bundle has no image archive');
  const archives: ImageArchive[] = [];
  for (const [i, member] of staged.entries()) {
    try {
      archives.push(
        await readImageArchive(createReadStream(member.path), join(stagingDir, `archive-${i}`), limits),
      );
    } catch (error) {
      if (error instanceof UnusableArchiveError)
        throw new UnusableArchiveError(`${member.name}: ${error.message}`, error.details);
      throw error;
    }
  }
  return { compose, archives };
}
