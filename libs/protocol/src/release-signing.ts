// Zod-free on purpose: the agent checks release signatures with this file through @ferry/protocol/wire,
// and the CLI signs with it, so both hash the same canonical bytes by construction.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json';
import { ManifestSignatureError } from './errors';
import type { ReleaseManifest } from './release';

/** One release owner's signature of a manifest: which key, and the base64 ed25519 signature. */
export interface ReleaseSignature {
  keyId: string;
  signature: string;
}

/** A fleet's root of trust for releases: the pinned public keys and how many must sign. */
export interface ReleaseTrust {
  /** Grows with every rotation; a device never goes back to a lower version. */
  version: number;
  /** PEM (SPKI) ed25519 public keys. */
  keys: string[];
  threshold: number;
}

/** A release key's id: sha256 (hex) of its DER public key, as TUF names keys by their hash. */
export function releaseKeyId(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

/** Signs any canonical-JSON value with an ed25519 private key (PEM). */
export function signCanonical(value: unknown, privateKeyPem: string): ReleaseSignature {
  const key = createPrivateKey(privateKeyPem);
  const publicPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  return {
    keyId: releaseKeyId(publicPem),
    signature: sign(null, Buffer.from(canonicalJson(value)), key).toString('base64'),
  };
}

/** The release owner's signature of a manifest (`ferry push --sign`). */
export function signRelease(manifest: ReleaseManifest, privateKeyPem: string): ReleaseSignature {
  return signCanonical(manifest, privateKeyPem);
}

/**
 * Checks that at least `trust.threshold` distinct keys of `trust.keys` signed `value`'s canonical
 * JSON. Signatures by other keys, malformed ones and repeats of one key count for nothing. Throws
 * {@link ManifestSignatureError} naming how many valid signatures were found.
 */
export function verifyThreshold(
  value: unknown,
  signatures: readonly ReleaseSignature[],
  trust: Pick<ReleaseTrust, 'keys' | 'threshold'>,
  what: string,
): void {
  if (!Number.isInteger(trust.threshold) || trust.threshold < 1)
    throw new ManifestSignatureError(`${what}: the trusted threshold ${trust.threshold} is unusable`);
  const bytes = Buffer.from(canonicalJson(value));
  const byId = new Map<string, string>();
  for (const pem of trust.keys) {
    try {
      byId.set(releaseKeyId(pem), pem);
    } catch {
      // A malformed pinned key can sign nothing.
    }
  }
  const good = new Set<string>();
  const given: unknown[] = Array.isArray(signatures) ? (signatures as unknown[]) : [];
  for (const entry of given) {
    const { keyId, signature } = (entry ?? {}) as { keyId?: unknown; signature?: unknown };
    if (typeof keyId !== 'string' || typeof signature !== 'string') continue;
    const pem = byId.get(keyId);
    if (!pem || good.has(keyId)) continue;
    try {
      if (verify(null, bytes, createPublicKey(pem), Buffer.from(signature, 'base64'))) good.add(keyId);
    } catch {
      // An unusable signature counts for nothing.
    }
  }
  if (good.size < trust.threshold)
    throw new ManifestSignatureError(
      `${what} carries ${good.size} valid signature(s) by the fleet's release keys; ${trust.threshold} needed`,
    );
}

/** One rotation of a fleet's release keys: the new root of trust and the previous keys' signatures of it. */
export interface ReleaseTrustStep {
  trust: ReleaseTrust;
  signatures: ReleaseSignature[];
}

/**
 * Follows a chain of rotations from the root of trust a device pinned: each next version must be
 * signed by the threshold of the version before it (what `PUT /v1/fleets/{fleet}/release-trust`
 * required), so neither the server nor anyone between can swap keys. Versions at or below the pinned
 * one are skipped; a gap or a step that does not verify throws {@link ManifestSignatureError}. Returns
 * the newest trust reached (the pinned one when the chain holds nothing newer).
 */
export function followReleaseTrust(pinned: ReleaseTrust, chain: readonly ReleaseTrustStep[]): ReleaseTrust {
  let trust = pinned;
  const steps = [...chain].sort((a, b) => a.trust.version - b.trust.version);
  for (const step of steps) {
    const next = step.trust;
    if (next.version <= trust.version) continue;
    if (next.version !== trust.version + 1)
      throw new ManifestSignatureError(
        `release keys jump from version ${trust.version} to ${next.version}: version ${trust.version + 1} is missing`,
      );
    if (
      !Array.isArray(next.keys) ||
      next.keys.some((k) => typeof k !== 'string') ||
      !Number.isSafeInteger(next.threshold) ||
      next.threshold < 1 ||
      next.threshold > next.keys.length
    )
      throw new ManifestSignatureError(`release keys version ${next.version} are not a usable root of trust`);
    verifyThreshold(next, step.signatures, trust, `release keys version ${next.version}`);
    trust = { version: next.version, keys: [...next.keys], threshold: next.threshold };
  }
  return trust;
}
