import { open } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { UnusableArchiveError } from '@ferry/protocol';
import { ArchiveLimits } from './archive-limits';
import { byteLimit } from './byte-limit';
import { WrittenFile, writeHashedFile } from './hashing-file-writer';
import { safeMemberName } from './member-name';
import { settleAll } from './settle-all';

/** A layer ready for the blob store: the uncompressed tar (by diffID) and a gzip copy. */
export interface StagedLayer {
  diffId: string;
  size: number;
  path: string;
  gzipDigest: string;
  gzipSize: number;
  gzipPath: string;
}

type Compression = 'gzip' | 'none';

async function sniffCompression(path: string): Promise<Compression> {
  const handle = await open(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    const { bytesRead } = await handle.read(magic, 0, 4, 0);
    if (bytesRead >= 2 && magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && magic.readUInt32LE(0) === 0xfd2fb528) {
      throw new UnusableArchiveError(
        'zstd-compressed layers are not supported: push gzip or uncompressed layers',
      );
    }
    return 'none';
  } finally {
    await handle.close();
  }
}

/**
 * Checks that a layer is a well-formed tar whose member names cannot escape the root it is extracted
 * into (no absolute names, no `..`, hard links inside the layer). Symlink targets may be absolute:
 * inside a container root they resolve within the root.
 */
export async function scanLayerTar(path: string, label: string): Promise<void> {
  const parser = extract();
  const consume = (async () => {
    for await (const entry of parser) {
      const { name, type, linkname } = entry.header;
      if (safeMemberName(name) === null && name !== './' && name !== '.') {
        throw new UnusableArchiveError(`${label} has an unsafe member name: ${JSON.stringify(name)}`);
      }
      if (type === 'link' && (!linkname || safeMemberName(linkname) === null)) {
        throw new UnusableArchiveError(
          `${label} has a hard link escaping the layer: ${JSON.stringify(linkname)}`,
        );
      }
      entry.resume();
    }
  })();
  try {
    const pumped = pipeline(createReadStream(path), parser).catch((error: unknown) => {
      parser.destroy(error as Error);
      throw error;
    });
    await settleAll([consume, pumped]);
  } catch (error) {
    if (error instanceof UnusableArchiveError) throw error;
    throw new UnusableArchiveError(`${label} is not a valid tar: ${(error as Error).message}`);
  }
}

/**
 * Turns a layer member as found in the archive (gzip'd or plain tar) into an uncompressed tar plus a
 * gzip copy, hashing both, with a decompression-ratio cap against gzip bombs.
 * `remaining` is the uncompressed byte budget left for the whole release.
 */
export async function stageLayer(
  raw: WrittenFile,
  dir: string,
  id: number,
  limits: ArchiveLimits,
  remaining: number,
  label: string,
): Promise<StagedLayer> {
  const compression = await sniffCompression(raw.path);
  const plainPath = join(dir, `layer-${id}.tar`);
  let plain: WrittenFile;
  let gzip: WrittenFile;
  if (compression === 'gzip') {
    const ratioCap = Math.max(limits.ratioFloorBytes, raw.size * limits.maxCompressionRatio);
    const cap = Math.min(ratioCap, remaining);
    const guard = byteLimit(cap, () =>
      cap === ratioCap
        ? new UnusableArchiveError(
            `${label} expands more than ${limits.maxCompressionRatio}x when decompressed (suspected gzip bomb)`,
          )
        : new UnusableArchiveError(`${label} makes the release exceed its uncompressed size limit`),
    );
    try {
      plain = await writeHashedFile(createReadStream(raw.path).pipe(createGunzip()).pipe(guard), plainPath);
    } catch (error) {
      if (error instanceof UnusableArchiveError) throw error;
      throw new UnusableArchiveError(`${label} is not valid gzip: ${(error as Error).message}`);
    }
    gzip = raw;
  } else {
    if (raw.size > remaining) {
      throw new UnusableArchiveError(`${label} makes the release exceed its uncompressed size limit`);
    }
    plain = { path: raw.path, digest: raw.digest, size: raw.size };
    gzip = await writeHashedFile(
      createReadStream(raw.path).pipe(createGzip({ level: 9 })),
      join(dir, `layer-${id}.tar.gz`),
    );
  }
  await scanLayerTar(plain.path, label);
  return {
    diffId: plain.digest,
    size: plain.size,
    path: plain.path,
    gzipDigest: gzip.digest,
    gzipSize: gzip.size,
    gzipPath: gzip.path,
  };
}
