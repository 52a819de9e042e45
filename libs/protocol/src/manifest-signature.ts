// Zod-free on purpose: the device agent verifies with this file through @ferry/protocol/wire, the
// server signs with it, so both hash the same canonical bytes by construction.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json';
import { ManifestSignatureError } from './errors';
import type { ReleaseManifest } from './release';

/** Signs a manifest's canonical JSON with the fleet's ed25519 private key (PEM); base64 signature. */
export function signManifest(manifest: ReleaseManifest, privateKeyPem: string): string {
  return sign(null, Buffer.from(canonicalJson(manifest)), createPrivateKey(privateKeyPem)).toString('base64');
}

/**
 * Checks a manifest's ed25519 signature against the fleet's public key (PEM). Throws
 * {@link ManifestSignatureError} when it does not verify or cannot be checked at all (a malformed key or
 * signature), so a caller cannot mistake "unusable" for "valid".
 */
export function verifyManifest(manifest: ReleaseManifest, signature: string, publicKeyPem: string): void {
  let ok: boolean;
  try {
    ok = verify(
      null,
      Buffer.from(canonicalJson(manifest)),
      createPublicKey(publicKeyPem),
      Buffer.from(signature, 'base64'),
    );
  } catch (error) {
    throw new ManifestSignatureError(`release signature unusable: ${(error as Error).message}`);
  }
  if (!ok) throw new ManifestSignatureError(`release ${manifest.releaseId} is not signed by the fleet key`);
}
