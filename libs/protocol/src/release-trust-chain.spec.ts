import { generateKeyPairSync } from 'node:crypto';
import { ManifestSignatureError } from './errors';
import {
  type ReleaseTrust,
  type ReleaseTrustStep,
  followReleaseTrust,
  signCanonical,
} from './release-signing';

function keyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const [a, b, c] = [keyPair(), keyPair(), keyPair()];
const v1: ReleaseTrust = { version: 1, keys: [a.publicKey, b.publicKey], threshold: 2 };
const v2: ReleaseTrust = { version: 2, keys: [b.publicKey], threshold: 1 };
const v3: ReleaseTrust = { version: 3, keys: [c.publicKey], threshold: 1 };
const step = (trust: ReleaseTrust, ...signers: string[]): ReleaseTrustStep => ({
  trust,
  signatures: signers.map((k) => signCanonical(trust, k)),
});

describe('following release-key rotations from the pinned root of trust', () => {
  it('follows each rotation the threshold of the keys before it signed, in any order given', () => {
    const chain = [step(v3, b.privateKey), step(v2, a.privateKey, b.privateKey)];
    expect(followReleaseTrust(v1, chain)).toEqual(v3);
    expect(followReleaseTrust(v2, chain)).toEqual(v3);
    expect(followReleaseTrust(v3, chain)).toEqual(v3);
    expect(followReleaseTrust(v1, [])).toEqual(v1);
  });

  it('refuses a rotation below the old threshold, by other keys, with a gap, or unusable', () => {
    expect(() => followReleaseTrust(v1, [step(v2, a.privateKey)])).toThrow(ManifestSignatureError);
    // One key signing twice is one signature of the two needed.
    expect(() => followReleaseTrust(v1, [step(v2, a.privateKey, a.privateKey)])).toThrow(/1 valid signature/);
    expect(() => followReleaseTrust(v1, [step(v2, c.privateKey, c.privateKey)])).toThrow(/1 needed|2 needed/);
    expect(() => followReleaseTrust(v1, [step(v3, a.privateKey, b.privateKey)])).toThrow(
      /version 2 is missing/,
    );
    const tooHigh = { ...v2, threshold: 5 };
    expect(() => followReleaseTrust(v1, [step(tooHigh, a.privateKey, b.privateKey)])).toThrow(/not a usable/);
    // A signed step whose keys were swapped afterwards does not verify.
    const swapped = step(v2, a.privateKey, b.privateKey);
    swapped.trust = { ...v2, keys: [c.publicKey] };
    expect(() => followReleaseTrust(v1, [swapped])).toThrow(/0 valid signature/);
  });
});
