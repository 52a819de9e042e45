import { generateKeyPairSync } from 'node:crypto';
import { ManifestSignatureError } from './errors';
import { signManifest, verifyManifest } from './manifest-signature';
import type { ReleaseManifest } from './release';

// The one implementation the server signs with and the agent verifies with (@ferry/protocol/wire).
function keyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const manifest: ReleaseManifest = {
  schemaVersion: 1,
  fleetId: 'garden',
  releaseId: 'r-1',
  version: 3,
  createdAt: '2026-01-02T03:04:05.000Z',
  services: [
    {
      name: 'app',
      image: 'app:3',
      configDigest: `sha256:${'a'.repeat(64)}`,
      layers: [
        { diffId: `sha256:${'b'.repeat(64)}`, size: 10, gzipDigest: `sha256:${'c'.repeat(64)}`, gzipSize: 9 },
      ],
    },
  ],
};

describe('manifest signature', () => {
  const fleet = keyPair();

  it('verifies what it signed, whatever the key order of the object', () => {
    const signature = signManifest(manifest, fleet.privateKey);
    expect(() => verifyManifest(manifest, signature, fleet.publicKey)).not.toThrow();
    const reordered = Object.fromEntries(Object.entries(manifest).reverse()) as unknown as ReleaseManifest;
    expect(() => verifyManifest(reordered, signature, fleet.publicKey)).not.toThrow();
  });

  it('refuses a manifest changed after signing, naming the release', () => {
    const signature = signManifest(manifest, fleet.privateKey);
    for (const forged of [
      { ...manifest, version: 4 },
      { ...manifest, fleetId: 'orchard' },
      { ...manifest, services: [] },
    ]) {
      expect(() => verifyManifest(forged, signature, fleet.publicKey)).toThrow(ManifestSignatureError);
      expect(() => verifyManifest(forged, signature, fleet.publicKey)).toThrow(
        /release r-1 is not signed by the fleet key/,
      );
    }
  });

  it("refuses another fleet's signature", () => {
    const other = keyPair();
    const signature = signManifest(manifest, other.privateKey);
    expect(() => verifyManifest(manifest, signature, fleet.publicKey)).toThrow(ManifestSignatureError);
  });

  it('refuses, never accepts, a signature or key it cannot even read', () => {
    const signature = signManifest(manifest, fleet.privateKey);
    for (const [sig, key] of [
      ['', fleet.publicKey],
      ['not base64 at all!', fleet.publicKey],
      [signature.slice(0, 20), fleet.publicKey],
      [signature, 'not a PEM key'],
      [signature, fleet.privateKey.replace('PRIVATE', 'PUBLIC')],
    ] as const) {
      expect(() => verifyManifest(manifest, sig, key)).toThrow(ManifestSignatureError);
    }
  });
});
