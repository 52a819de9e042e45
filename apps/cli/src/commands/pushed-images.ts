import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ArchiveImage, archiveLimits, readImageArchive, releaseServicesOf } from '@ferry/delta';
import { canonicalJson, type ReleaseManifest } from '@ferry/protocol';
import { InputError } from '../support/errors';

/** One service as the operator's own push defines it: what a manifest must list for it. */
export interface LocalService {
  name: string;
  image: string | null;
  configDigest: string;
  /** Layer diffIDs (sha256 of the uncompressed tars), in order. */
  layers: string[];
  /** The runtime configuration the compose file gives it (`{}` without one). */
  config: unknown;
}

/** What the operator pushed, read on the operator's machine: the services and app a manifest must hold. */
export interface LocalRelease {
  services: LocalService[];
  /** Volumes and networks of the compose file (none without one). */
  app: { volumes: unknown; networks: unknown };
}

/**
 * Reads the archives (and compose file) the operator pushed, on the operator's machine, with the same
 * checks and the same composition the server applies (every config and layer digest verified against
 * its content; services from the compose file, each image once): what a manifest signed for this push
 * must describe. Staged in a temporary folder, removed afterwards. Bind mounts are not judged here (the
 * fleet's allowed paths are the server's to enforce); a refused compose file is refused here too.
 */
export async function localRelease(archives: string[], composeFile: string | null): Promise<LocalRelease> {
  const staging = await mkdtemp(join(tmpdir(), 'ferry-sign-'));
  try {
    const seen = new Map<string, ArchiveImage>();
    for (const [i, file] of archives.entries()) {
      const archive = await readImageArchive(
        createReadStream(file),
        join(staging, String(i)),
        archiveLimits({ maxArchiveBytes: Number.MAX_SAFE_INTEGER }),
      );
      for (const image of archive.images)
        if (!seen.has(image.config.digest)) seen.set(image.config.digest, image);
    }
    const compose = composeFile ? await readFile(composeFile) : null;
    let parsed: ReturnType<typeof releaseServicesOf>;
    try {
      parsed = releaseServicesOf([...seen.values()], compose, ['/']);
    } catch (error) {
      throw new InputError(`not signing: ${(error as Error).message}`);
    }
    return {
      services: parsed.services.map((s) => ({
        name: s.name,
        image: s.image,
        configDigest: s.configDigest,
        layers: s.layers.map((l) => l.diffId),
        config: s.config ?? {},
      })),
      app: { volumes: parsed.app.volumes, networks: parsed.app.networks },
    };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The first top-level key whose value differs between two configurations (for the message). */
function differingKey(a: unknown, b: unknown): string {
  const x = (a ?? {}) as Record<string, unknown>;
  const y = (b ?? {}) as Record<string, unknown>;
  for (const key of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort())
    if (canonicalJson(x[key] ?? null) !== canonicalJson(y[key] ?? null)) return key;
  return '?';
}

/**
 * Refuses to sign a manifest that is not exactly the push: the same services, each with the image the
 * push gave it (config digest and layer diffIDs, in order), the same runtime configuration (command,
 * environment, volumes, devices, privileges, …) and the same app volumes and networks, in the app named
 * after `fleetSlug`. So the owner's signature covers what was actually sent, even if the server that
 * answered is lying. Throws {@link InputError} naming the first difference.
 */
export function checkManifestMatchesPush(
  manifest: ReleaseManifest,
  local: LocalRelease,
  fleetSlug: string,
): void {
  const refuse = (what: string): never => {
    throw new InputError(`${what}: not signing it`);
  };
  const byConfig = new Map(local.services.map((s) => [s.configDigest, s]));
  const byName = new Map(local.services.map((s) => [s.name, s]));
  for (const service of manifest.services) {
    const image = byConfig.get(service.configDigest);
    if (!image)
      refuse(
        `the server's manifest gives service ${service.name} image ${service.configDigest}, which is not in the archive you pushed`,
      );
    const listed = service.layers.map((l) => l.diffId);
    const ofImage = image!.layers;
    if (listed.length !== ofImage.length || listed.some((d, i) => d !== ofImage[i]))
      refuse(
        `the server's manifest lists layers ${listed.join(', ')} for service ${service.name}; the archive you pushed has ${ofImage.join(', ')}`,
      );
    const mine = byName.get(service.name);
    if (!mine) refuse(`the server's manifest has a service ${service.name} your push does not define`);
    if (mine!.configDigest !== service.configDigest)
      refuse(`the server's manifest gives service ${service.name} another image than your push`);
    if (canonicalJson(service.config ?? {}) !== canonicalJson(mine!.config))
      refuse(
        `the server's manifest gives service ${service.name} another configuration than your push (${differingKey(service.config, mine!.config)} differs)`,
      );
  }
  const listed = new Set(manifest.services.map((s) => s.name));
  const missing = local.services.find((s) => !listed.has(s.name));
  if (missing)
    refuse(
      `the server's manifest leaves out ${missing.image === null ? `image ${missing.configDigest}` : `service ${missing.name}`} of your push`,
    );
  const app = manifest.app ?? { name: fleetSlug, volumes: {}, networks: {} };
  if (app.name !== fleetSlug) refuse(`the server's manifest names the app ${app.name}, not ${fleetSlug}`);
  for (const part of ['volumes', 'networks'] as const)
    if (canonicalJson(app[part] ?? {}) !== canonicalJson(local.app[part] ?? {}))
      refuse(`the server's manifest gives the app other ${part} than your push`);
}
