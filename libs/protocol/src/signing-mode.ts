// Zod-free and crypto-free on purpose: the dashboard bundles it through `@ferry/protocol/wire`.
import type { ReleaseTrust } from './release-signing';

/**
 * How a fleet's releases are signed, for people: `owner 2-of-3 (v1)` (by their owners' release keys:
 * threshold, keys, root-of-trust version) or `server` (by the server's fleet key).
 */
export function releaseSigningMode(trust: ReleaseTrust | null): string {
  return trust ? `owner ${trust.threshold}-of-${trust.keys.length} (v${trust.version})` : 'server';
}
