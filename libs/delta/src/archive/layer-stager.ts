import { open, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { type Header, extract } from 'tar-stream';
import { UnusableArchiveError, isDiskFullError } from '@ferry/protocol';
import { ArchiveLimits } from './archive-limits';
import { isZlibError } from './borrowed-stream';
import { expansionGuard } from './byte-limit';
import { WrittenFile, writeHashedFile } from './hashing-file-writer';
import { safeMemberName } from './member-name';

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

/** What a layer entry must not be: a name escaping the root, or a hard link escaping the layer. */
function unsafeEntry(header: Header, label: string): UnusableArchiveError | null {
  const { name, type, linkname } = header;
  if (safeMemberName(name) === null && name !== './' && name !== '.')
    return new UnusableArchiveError(`${label} has an unsafe member name: ${JSON.stringify(name)}`);
  if (type === 'link' && (!linkname || safeMemberName(linkname) === null))
    return new UnusableArchiveError(
      `${label} has a hard link escaping the layer: ${JSON.stringify(linkname)}`,
    );
  return null;
}

/**
 * Checks that a layer is a tar Docker would load and whose member names cannot escape the root it
 * is extracted into (no absolute names, no `..`, hard links inside the layer). Symlink targets may
 * be absolute: inside a container root they resolve within the root.
 *
 * Docker's reader (Go's archive/tar) takes a tar that ends right after its last member's data,
 * without the padding to 512 bytes and the end-of-archive blocks (umoci 0.4.7 `insert` writes such
 * layers), and tars in the old V7 format: so does this check. The layer's bytes are never changed:
 * its sha256 is its diffID. A member whose data is cut short, or a header cut short, is refused, as
 * Docker refuses it.
 */
export async function scanLayerTar(path: string, label: string): Promise<void> {
  // tar-stream reads V7 tars (no ustar magic) with this option; its types do not declare it.
  const parser = extract({ allowUnknownFormat: true } as Parameters<typeof extract>[0]);
  let last: { dataEnd: number } | undefined;
  parser.on('entry', (header, stream, next) => {
    const { byteOffset } = header as Header & { byteOffset?: number };
    last = { dataEnd: (byteOffset ?? Number.NaN) + (header.size ?? 0) };
    stream.on('error', () => undefined); // the parser's own error reaches the pipeline
    const refusal = unsafeEntry(header, label);
    if (refusal) return next(refusal);
    stream.on('end', () => next());
    stream.resume();
  });
  try {
    await pipeline(createReadStream(path), parser);
  } catch (error) {
    if (error instanceof UnusableArchiveError) throw error;
    if ((error as Error).message === 'Unexpected end of data' && last !== undefined) {
      const { size } = await stat(path);
      const padded = Math.ceil(last.dataEnd / 512) * 512;
      // The file ends inside the last member's padding: its data is whole.
      if (size >= last.dataEnd && size < padded) return;
    }
    if (isDiskFullError(error)) throw error;
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
    const guard = expansionGuard({
      compressedBytes: () => raw.size,
      maxRatio: limits.maxCompressionRatio,
      floorBytes: limits.ratioFloorBytes,
      maxBytes: remaining,
      tooLarge: () =>
        new UnusableArchiveError(`${label} makes the release exceed its uncompressed size limit`),
      bomb: () =>
        new UnusableArchiveError(
          `${label} expands more than ${limits.maxCompressionRatio}x when decompressed (suspected gzip bomb)`,
        ),
    });
    try {
      plain = await writeHashedFile(createReadStream(raw.path), plainPath, {
        through: [createGunzip(), guard],
      });
    } catch (error) {
      if (isZlibError(error))
        throw new UnusableArchiveError(`${label} is not valid gzip: ${(error as Error).message}`);
      throw error;
    }
    gzip = raw;
  } else {
    if (raw.size > remaining) {
      throw new UnusableArchiveError(`${label} makes the release exceed its uncompressed size limit`);
    }
    plain = { path: raw.path, digest: raw.digest, size: raw.size };
    gzip = await writeHashedFile(createReadStream(raw.path), join(dir, `layer-${id}.tar.gz`), {
      through: [createGzip({ level: 9 })],
    });
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
