import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { ReleaseManifest, canonicalJson } from '@ferry/protocol';

/** Signs a manifest's canonical JSON with the fleet's ed25519 private key (PEM); base64 signature. */
export function signManifest(manifest: ReleaseManifest, privateKeyPem: string): string {
  return sign(null, Buffer.from(canonicalJson(manifest)), createPrivateKey(privateKeyPem)).toString('base64');
}

/** Verifies a manifest signature against the fleet's public key (PEM). */
export function verifyManifest(manifest: ReleaseManifest, signature: string, publicKeyPem: string): boolean {
  return verify(
    null,
    Buffer.from(canonicalJson(manifest)),
    createPublicKey(publicKeyPem),
    Buffer.from(signature, 'base64'),
  );
}
