import type { ReleaseSignature, ReleaseTrustStep } from './release-signing';
import { z } from 'zod';
import { DigestSchema } from './digest';
import { ReleaseManifest } from './release';
import type { DeviceVariables } from './service-config';
import type { UpdatePolicy } from './update-policy';

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

/**
 * The answer to a target request. `release` is null when the device has no target yet. The whole answer
 * is signed by the server's online key (docs/protocol.md "Signed targets"; target-signing.ts).
 */
export interface DeviceTarget {
  /** The device this target is for: a target of another device is refused. */
  uuid: string;
  /** Grows with every change of the device's target (stored per device); a lower one is a replay. */
  targetVersion: number;
  /** ISO 8601; the device refuses the target after it (freeze). Every answer is signed afresh. */
  expires: string;
  /** The operator (or a rollout's automatic rollback) asked for this older release. */
  rollback: boolean;
  /** The server's online public key (PEM) now; a device that verified the target with its pinned key pins this one. */
  onlineKey: string;
  /**
   * The fleet's release-key rotations (versions 2 and up, oldest first), each signed by the threshold of
   * the keys before it: a device follows them from the version it pinned. Empty for server-signed fleets.
   */
  releaseTrustChain: ReleaseTrustStep[];
  /** ed25519 signatures of the target by the online key (and, after a rotation, the one before). */
  signatures: ReleaseSignature[];
  release: {
    id: string;
    version: number;
    manifest: ReleaseManifest;
    /** base64 ed25519 signature of the canonical JSON of the manifest, by the fleet key. */
    signature: string;
    /** The release owners' signatures (fleets with pinned release keys): what the agent checks then. */
    ownerSignatures: ReleaseSignature[] | null;
  } | null;
  layers: TargetLayer[];
  /** Bytes the device will download with these choices, and what full layers would have cost. */
  downloadBytes: number;
  fullBytes: number;
  /** Image configs by digest (service image IDs), served as blobs too. */
  configs: { service: string; digest: string }[];
  /**
   * Volumes (as the compose file names them) an operator asked to purge from this device
   * (`ferry device purge-volume`) and the target release does not declare; absent from servers
   * before it and ignored by agents before it. The agent answers each with
   * `POST /v1/device/volume-purges/{volume}`.
   */
  volumePurges?: string[];
  /**
   * The device's configuration variables, every level (docs/variables.md), signed with the rest so a
   * party between server and device cannot change them; their `version` only grows, and an agent
   * ignores a lower one. Absent from servers before it (the agent then reads `GET /v1/device/variables`).
   */
  variables?: DeviceVariables;
  /**
   * When the device may download and install, and how fast it may download (docs/rollouts.md
   * "Maintenance windows and metered links"); absent when nothing is set (any time, no cap).
   */
  updatePolicy?: UpdatePolicy;
}

/** One of the server's online keys that sign device targets (`GET /v1/target-keys`). */
export interface OnlineKey {
  /** 1 for the first key; each rotation adds one. */
  seq: number;
  /** sha256 (hex) of the DER public key, as release keys are named. */
  keyId: string;
  publicKey: string;
  /** `current` signs; `previous` co-signs until the next rotation, so devices learn the current one. */
  role: 'current' | 'previous' | 'retired';
  createdAt: string;
}
