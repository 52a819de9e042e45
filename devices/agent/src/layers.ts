import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { applyDelta } from '../../../libs/delta/src/delta/decoder';
import { AgentError } from './errors';
import type { EngineClient } from './engine';

/** A rebuilt or exported layer tar, named by its diffID. */
export function layerPath(dir: string, diffId: string): string {
  return join(dir, `${diffId.replace(/^sha256:/, '')}.tar`);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A layer's bytes differ from its diffID. */
export class LayerDigestError extends AgentError {
  constructor(message: string) {
    super(message, 'LAYER_DIGEST');
  }
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Gunzips `source` to `out` through a temporary file, renamed only when its sha256 is `diffId`. */
async function writeVerified(
  source: Readable,
  gunzip: Transform,
  out: string,
  diffId: string,
): Promise<void> {
  const temp = `${out}.${randomBytes(4).toString('hex')}.tmp`;
  const hash = createHash('sha256');
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(source, gunzip, hasher, createWriteStream(temp));
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== diffId) throw new LayerDigestError(`layer rebuilt as ${actual}, expected ${diffId}`);
    await fsyncFile(temp);
    await rename(temp, out);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Exports the base layers `wanted` (diffIDs) from the engine as tar files in `dir`, so the decoder
 * can read them by position. Each `docker save` layer tar is hashed as it streams by; only the
 * wanted ones are kept. Returns the diffIDs it could not find.
 */
export async function exportBaseLayers(
  engine: EngineClient,
  wanted: Set<string>,
  dir: string,
): Promise<Set<string>> {
  await mkdir(dir, { recursive: true });
  const missing = new Set<string>();
  for (const diffId of wanted) if (!(await exists(layerPath(dir, diffId)))) missing.add(diffId);
  if (missing.size === 0) return missing;
  const holders = await engine.layerDiffIds();
  const images = new Set<string>();
  for (const diffId of missing) {
    const holder = holders.get(diffId);
    if (holder) images.add(holder);
  }
  for (const image of images) {
    const archive = await engine.exportImage(image);
    const reader = extract();
    reader.on('entry', (header, stream, next) => {
      const isLayer =
        header.type === 'file' &&
        (/(^|\/)layer\.tar$/.test(header.name) || /^blobs\/sha256\/[0-9a-f]{64}$/.test(header.name));
      if (!isLayer) {
        stream.on('end', () => next());
        stream.resume();
        return;
      }
      const temp = join(dir, `.export-${randomBytes(6).toString('hex')}.tmp`);
      const hash = createHash('sha256');
      const file = createWriteStream(temp);
      stream.on('data', (chunk: unknown) => {
        hash.update(chunk as Buffer);
      });
      stream.pipe(file);
      file.on('error', (error) => next(error));
      file.on('finish', () => {
        const diffId = `sha256:${hash.digest('hex')}`;
        const keep = missing.has(diffId);
        const done = keep
          ? rename(temp, layerPath(dir, diffId)).then(() => missing.delete(diffId))
          : unlink(temp);
        done.then(
          () => next(),
          (error: Error) => next(error),
        );
      });
    });
    await pipeline(archive, reader);
    if (missing.size === 0) break;
  }
  return missing;
}

/** Rebuilds a layer from a delta against exported base tars (decoder checks bases and the result). */
export async function rebuildFromDelta(
  delta: string,
  bases: string[],
  out: string,
  onProgress?: (written: number, total: number) => void,
): Promise<void> {
  await applyDelta({ delta, bases, out, ...(onProgress ? { onProgress } : {}) });
}

/** Unpacks a gzip'd full layer, checking the result against its diffID. */
export async function rebuildFromGzip(gzip: string, diffId: string, out: string): Promise<void> {
  await writeVerified(createReadStream(gzip), createGunzip(), out, diffId);
}
