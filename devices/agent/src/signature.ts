import { createPublicKey, verify } from 'node:crypto';
import { canonicalJson } from '../../../libs/protocol/src/canonical-json';
import type { ReleaseManifest } from '../../../libs/protocol/src/release';
import { SignatureError } from './errors';

/**
 * Checks a release manifest's ed25519 signature against the fleet key pinned at registration;
 * throws {@link SignatureError} so nothing of an unverified release is ever downloaded or run.
 */
export function verifyManifest(manifest: ReleaseManifest, signature: string, publicKeyPem: string): void {
  let ok = false;
  try {
    ok = verify(
      null,
      Buffer.from(canonicalJson(manifest)),
      createPublicKey(publicKeyPem),
      Buffer.from(signature, 'base64'),
    );
  } catch (error) {
    throw new SignatureError(`release signature unusable: ${(error as Error).message}`);
  }
  if (!ok)
    throw new SignatureError(
      `release ${manifest.releaseId} is not signed by the fleet key pinned at registration`,
    );
}
