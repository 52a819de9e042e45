import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from './errors';
import { releaseKeyId, type ReleaseTrust } from './release-signing';

/** The most release keys a fleet may pin. */
export const MAX_RELEASE_KEYS = 16;

export const ReleaseSignatureSchema = z
  .object({
    keyId: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex key id'),
    signature: z.string().min(1).max(200),
  })
  .strict();

export const ReleaseSignaturesSchema = z.array(ReleaseSignatureSchema).min(1).max(MAX_RELEASE_KEYS);

/** Body of `POST /v1/releases/:id/signatures`: the release owners' signatures of its manifest. */
export const SignReleaseSchema = z.object({ signatures: ReleaseSignaturesSchema }).strict();

export const ReleaseTrustSchema = z
  .object({
    version: z.number().int().min(1),
    keys: z.array(z.string().min(1).max(1000)).min(1).max(MAX_RELEASE_KEYS),
    threshold: z.number().int().min(1).max(MAX_RELEASE_KEYS),
  })
  .strict();

/**
 * Body of `PUT /v1/fleets/:fleet/release-trust`: the fleet's next root of trust, signed by the
 * threshold of its current keys (`ferry fleet release-keys rotate`), so the server cannot swap them.
 */
export const RotateReleaseTrustSchema = z
  .object({ trust: ReleaseTrustSchema, signatures: ReleaseSignaturesSchema })
  .strict();
export type RotateReleaseTrust = z.infer<typeof RotateReleaseTrustSchema>;

/**
 * Checks a root of trust: every key an ed25519 public key (PEM), no key twice, a threshold no larger
 * than the number of keys. Throws {@link ValidationError} naming the problem.
 */
export function checkReleaseTrust(trust: ReleaseTrust, what = 'releaseKeys'): void {
  const ids = new Set<string>();
  trust.keys.forEach((pem, i) => {
    let id: string;
    try {
      id = releaseKeyId(pem);
    } catch {
      throw new ValidationError(`${what}.${i}: not a public key in PEM form`);
    }
    if (!/^-----BEGIN PUBLIC KEY-----/.test(pem.trim()) || !isEd25519(pem))
      throw new ValidationError(`${what}.${i}: not an ed25519 public key (ferry keys generate-release-key)`);
    if (ids.has(id)) throw new ValidationError(`${what}.${i}: the same key twice`);
    ids.add(id);
  });
  if (trust.threshold > trust.keys.length)
    throw new ValidationError(
      `threshold ${trust.threshold} is more than the ${trust.keys.length} key(s) given`,
    );
}

function isEd25519(pem: string): boolean {
  return createPublicKey(pem).asymmetricKeyType === 'ed25519';
}
