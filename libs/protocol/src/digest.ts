import { z } from 'zod';

/** `sha256:` followed by 64 lowercase hex characters: how every blob, layer and config is named. */
export const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex>');
export type Digest = z.infer<typeof DigestSchema>;

/** True when `value` is a well-formed sha256 digest. */
export function isDigest(value: string): value is Digest {
  return DigestSchema.safeParse(value).success;
}
