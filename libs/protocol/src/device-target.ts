import { z } from 'zod';
import { DigestSchema } from './digest';
import { ReleaseManifest } from './release';

/**
 * What a device sends when it asks for its target (`GET /v1/device/target?have=d1,d2` or
 * `POST /v1/device/target`): the layer diffIDs its engine holds, so the server offers deltas only
 * from bases the device really has (balena-supervisor #1631, balena-engine #444).
 */
export const TargetRequestSchema = z
  .object({
    have: z.array(DigestSchema).max(4096).default([]),
  })
  .strict();
export type TargetRequest = z.infer<typeof TargetRequestSchema>;

/** How a device gets one layer it lacks. */
export type LayerDownload =
  | {
      kind: 'delta';
      /** Blob digest of the delta, served by `GET /v1/blobs/{digest}` with Range support. */
      digest: string;
      size: number;
      /** Base layers (diffIDs, in decoder order) the delta applies to; the device holds all of them. */
      bases: string[];
      /** The gzip'd full layer, the fallback when the delta fails to download, verify or apply. */
      fallback: { digest: string; size: number };
    }
  | {
      kind: 'full';
      /** The gzip'd layer blob. */
      digest: string;
      size: number;
    };

export interface TargetLayer {
  service: string;
  diffId: string;
  /** Uncompressed size (disk needed once loaded). */
  size: number;
  /** Null when the device already holds the layer. */
  download: LayerDownload | null;
}

/** The answer to a target request. `release` is null when the device has no target yet. */
export interface DeviceTarget {
  release: {
    id: string;
    version: number;
    manifest: ReleaseManifest;
    /** base64 ed25519 signature of the canonical JSON of the manifest, by the fleet key. */
    signature: string;
  } | null;
  layers: TargetLayer[];
  /** Bytes the device will download with these choices, and what full layers would have cost. */
  downloadBytes: number;
  fullBytes: number;
  /** Image configs by digest (service image IDs), served as blobs too. */
  configs: { service: string; digest: string }[];
}
