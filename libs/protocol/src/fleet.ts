import { z } from 'zod';
import type { ReleaseTrust } from './release-signing';

/** CPU architectures a fleet's devices may have, named as balena names them. */
export const ARCHITECTURES = ['aarch64', 'armv7hf', 'amd64'] as const;
export const ArchitectureSchema = z.enum(ARCHITECTURES);
export type Architecture = z.infer<typeof ArchitectureSchema>;

export const SlugSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'lowercase letters, digits and inner dashes only');

export const CreateFleetSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    slug: SlugSchema.optional(),
    arch: ArchitectureSchema,
    /**
     * Release public keys (PEM, ed25519, from `ferry keys generate-release-key`) to pin: the fleet's
     * releases must then be signed by the release owners, not the server (docs/security.md).
     */
    releaseKeys: z.array(z.string().min(1).max(1000)).min(1).max(16).optional(),
    /** How many of `releaseKeys` must sign each release. @defaultValue 1 */
    releaseThreshold: z.number().int().min(1).max(16).optional(),
  })
  .strict();
export type CreateFleet = z.infer<typeof CreateFleetSchema>;

export interface Fleet {
  id: string;
  name: string;
  slug: string;
  arch: Architecture;
  /** The ed25519 public key (PEM, SPKI) that verifies this fleet's release manifests. */
  signingPublicKey: string;
  /**
   * The release owners' pinned keys: `owner` mode when set (releases need their signatures), `server`
   * mode when null (the server signs with the key above).
   */
  releaseTrust: ReleaseTrust | null;
  createdAt: string;
}

export const CreateProvisioningKeySchema = z
  .object({ name: z.string().trim().min(1).max(100).optional() })
  .strict();

/** A provisioning key as listed: the secret itself is shown only once, when created. */
export interface ProvisioningKey {
  id: string;
  fleetId: string;
  name: string | null;
  /** The first characters of the key, to tell keys apart. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface CreatedProvisioningKey extends ProvisioningKey {
  key: string;
}

/** Makes a slug from a fleet name: `My Fleet 2` → `my-fleet-2`. */
export function slugify(name: string): string {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/g, '');
  return slug.length > 0 ? slug : 'fleet';
}

/** Body of `PUT /v1/fleets/{fleet}/bind-mounts`: host paths compose releases may bind-mount. */
export const BindMountsSchema = z
  .object({
    paths: z
      .array(
        z
          .string()
          .max(1024)
          .regex(/^\/[^\0]*$/, 'an absolute path')
          .refine((p) => !p.split('/').includes('..'), 'no ".." segments'),
      )
      .max(64),
  })
  .strict();
export interface BindMounts {
  paths: string[];
}
