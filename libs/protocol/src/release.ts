import { z } from 'zod';

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
}

/** What the server signs: a device trusts a release only if this verifies under its fleet's key. */
export interface ReleaseManifest {
  schemaVersion: 1;
  fleetId: string;
  releaseId: string;
  version: number;
  createdAt: string;
  services: ReleaseService[];
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
}

export { canonicalJson } from './canonical-json';
