import { z } from 'zod';

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
