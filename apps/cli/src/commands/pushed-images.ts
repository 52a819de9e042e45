import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveLimits, readImageArchive } from '@ferry/delta';
import type { ReleaseManifest } from '@ferry/protocol';
import { InputError } from '../support/errors';

/** One image as the operator's own archive holds it: what a manifest must list for it. */
export interface LocalImage {
  configDigest: string;
  /** Layer diffIDs (sha256 of the uncompressed tars), in order. */
  layers: string[];
}

/**
 * Reads the archives the operator pushed, on the operator's machine, with the same checks the server
 * applies (every config and layer digest verified against its content): the images a manifest signed
 * for this push must describe. Staged in a temporary folder, removed afterwards.
 */
export async function localImages(archives: string[]): Promise<LocalImage[]> {
  const staging = await mkdtemp(join(tmpdir(), 'ferry-sign-'));
  try {
    const images: LocalImage[] = [];
    for (const [i, file] of archives.entries()) {
      const archive = await readImageArchive(
        createReadStream(file),
        join(staging, String(i)),
        archiveLimits({ maxArchiveBytes: Number.MAX_SAFE_INTEGER }),
      );
      for (const image of archive.images)
        images.push({ configDigest: image.config.digest, layers: image.layers.map((l) => l.diffId) });
    }
    return images;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Refuses to sign a manifest whose images are not exactly the pushed ones: each service's config digest
 * must be one of the archive's images and its layer diffIDs that image's, in order, and every pushed
 * image must be in it. So the owner's signature covers what was actually sent, even if the server that
 * answered is lying. Throws {@link InputError} naming the first difference.
 */
export function checkManifestImages(manifest: ReleaseManifest, local: LocalImage[]): void {
  const byConfig = new Map(local.map((image) => [image.configDigest, image]));
  const used = new Set<string>();
  for (const service of manifest.services) {
    const image = byConfig.get(service.configDigest);
    if (!image)
      throw new InputError(
        `the server's manifest gives service ${service.name} image ${service.configDigest}, which is not in the archive you pushed: not signing it`,
      );
    const listed = service.layers.map((l) => l.diffId);
    const differs = listed.length !== image.layers.length || listed.some((d, i) => d !== image.layers[i]);
    if (differs)
      throw new InputError(
        `the server's manifest lists layers ${listed.join(', ')} for service ${service.name}; the archive you pushed has ${image.layers.join(', ')}: not signing it`,
      );
    used.add(image.configDigest);
  }
  const missing = local.find((image) => !used.has(image.configDigest));
  if (missing)
    throw new InputError(
      `the server's manifest leaves out image ${missing.configDigest} of the archive you pushed: not signing it`,
    );
}
