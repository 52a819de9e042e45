import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { applyDelta } from '@ferry/delta/decoder';
import { renameDurable } from '@ferry/storage/files';
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
    await renameDurable(temp, out);
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
      const hasher = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      const keep = async (): Promise<void> => {
        try {
          await pipeline(stream, hasher, createWriteStream(temp));
          const diffId = `sha256:${hash.digest('hex')}`;
          if (!missing.has(diffId)) return await unlink(temp);
          await renameDurable(temp, layerPath(dir, diffId));
          missing.delete(diffId);
        } catch (error) {
          await unlink(temp).catch(() => undefined);
          throw error;
        }
      };
      void keep().then(
        () => next(),
        (error: Error) => next(error),
      );
    });
    await pipeline(archive, reader);
    if (missing.size === 0) break;
  }
  return missing;
}

/**
 * Rebuilds the layer `want` (diffID and size) from a delta against exported base tars. The
 * decoder refuses a delta whose header names another layer before writing a byte, checks the
 * bases, and renames the result into place only when its sha256 and size are the delta's target,
 * which is `want`: a delta that rebuilds some other valid layer never becomes `<diffId>.tar`.
 */
export async function rebuildFromDelta(
  delta: string,
  bases: string[],
  out: string,
  want: { diffId: string; size: number },
  onProgress?: (written: number, total: number) => void,
): Promise<void> {
  const expected = { digest: want.diffId, size: want.size };
  const result = await applyDelta({ delta, bases, out, expected, ...(onProgress ? { onProgress } : {}) });
  // The decoder checked this already; a layer stored under the wrong name would be trusted forever.
  if (`sha256:${result.digest}` !== want.diffId || result.size !== want.size) {
    await unlink(out).catch(() => undefined);
    throw new LayerDigestError(`layer rebuilt as sha256:${result.digest}, expected ${want.diffId}`);
  }
}

/** Unpacks a gzip'd full layer, checking the result against its diffID. */
export async function rebuildFromGzip(gzip: string, diffId: string, out: string): Promise<void> {
  await writeVerified(createReadStream(gzip), createGunzip(), out, diffId);
}
