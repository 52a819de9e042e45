import type { ReleaseSignature } from './release-signing';
import { z } from 'zod';
import type { AppConfig, ServiceConfig } from './service-config';

export const ReleaseVersionSchema = z.coerce.number().int().positive().max(2_147_483_647);

export const PushReleaseQuerySchema = z
  .object({
    version: ReleaseVersionSchema.optional(),
    note: z.string().max(500).optional(),
  })
  .strict();

/** One layer of a service's image, as stored: the uncompressed tar by diffID plus a gzip copy. */
export interface ReleaseLayer {
  /** sha256 of the uncompressed layer tar (the image config's `rootfs.diff_ids` entry). */
  diffId: string;
  size: number;
  /** sha256 and size of the gzip copy served for full downloads. */
  gzipDigest: string;
  gzipSize: number;
}

export interface ReleaseService {
  /** Service name: from the image's repo tag (`web:2` → `web`); a single untagged image is `main`. */
  name: string;
  /** The repo tag the image was pushed with, if any. */
  image: string | null;
  /** sha256 of the image config JSON; also the image ID the engine reports. */
  configDigest: string;
  layers: ReleaseLayer[];
  /**
   * The service's runtime configuration from the release's compose file (manifest schema 2); `{}` for a
   * service pushed without one (engine defaults). Absent in schema-1 manifests.
   */
  config?: ServiceConfig;
}

/** The manifest schema version new releases get; devices still verify and run schema 1. */
export const MANIFEST_SCHEMA_VERSION = 2;

/**
 * What the server signs: a device trusts a release only if this verifies under its fleet's key.
 * Schema 1: images only. Schema 2 adds each service's `config` and the `app` (docs/compose.md).
 */
export interface ReleaseManifest {
  schemaVersion: 1 | 2;
  fleetId: string;
  releaseId: string;
  version: number;
  createdAt: string;
  services: ReleaseService[];
  /** Schema 2: the app's name (the fleet slug: volumes are `<name>_<volume>`), volumes and networks. */
  app?: AppConfig & { name: string };
}

export interface Release {
  id: string;
  fleetId: string;
  version: number;
  note: string | null;
  createdAt: string;
  services: ReleaseService[];
  /** Sum of the uncompressed layer sizes. */
  totalSize: number;
  manifest: ReleaseManifest;
  /** base64 ed25519 signature of the canonical JSON of `manifest`. */
  signature: string;
  /**
   * The release owners' signatures of `manifest` (fleets with pinned release keys); null for a fleet
   * the server signs for. An empty list: pushed, not signed yet (it cannot be rolled out).
   */
  ownerSignatures: ReleaseSignature[] | null;
}

/** Every blob a release's manifest names: each service's config, layers and their gzip copies. */
export function releaseBlobDigests(manifest: ReleaseManifest): string[] {
  const digests = new Set<string>();
  for (const service of manifest.services) {
    digests.add(service.configDigest);
    for (const layer of service.layers) digests.add(layer.diffId).add(layer.gzipDigest);
  }
  return [...digests];
}
