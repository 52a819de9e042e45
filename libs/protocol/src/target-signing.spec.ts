import { generateKeyPairSync } from 'node:crypto';
import type { DeviceTarget } from './device-target';
import { TargetRefusedError } from './errors';
import type { ReleaseManifest } from './release';
import {
  MAX_TARGET_SIGNATURES,
  MAX_TRUST_CHAIN,
  type UnsignedTarget,
  checkTargetProgress,
  signTarget,
  verifySignedTarget,
} from './target-signing';

// The one implementation the server signs targets with and the agent checks them with (@ferry/protocol/wire).
function keyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

const online = keyPair();
const uuid = 'a'.repeat(32);
const now = Date.parse('2026-06-01T00:00:00.000Z');
const manifest = (version: number): ReleaseManifest => ({
  schemaVersion: 1,
  fleetId: 'garden',
  releaseId: `r-${version}`,
  version,
  createdAt: '2026-01-02T03:04:05.000Z',
  services: [],
});
const unsigned = (over: Partial<UnsignedTarget> = {}, version = 3): UnsignedTarget => ({
  uuid,
  targetVersion: 7,
  expires: new Date(now + 3600_000).toISOString(),
  rollback: false,
  onlineKey: online.publicKey,
  releaseTrustChain: [],
  release: {
    id: `r-${version}`,
    version,
    manifest: manifest(version),
    signature: 'c2ln',
    ownerSignatures: null,
  },
  layers: [{ service: 'app', diffId: `sha256:${'b'.repeat(64)}`, size: 10, download: null }],
  downloadBytes: 0,
  fullBytes: 0,
  configs: [],
  ...over,
});
const signed = (over: Partial<UnsignedTarget> = {}, version = 3): DeviceTarget =>
  signTarget(unsigned(over, version), [online.privateKey]);
/** What the agent does with the bytes of an answer: JSON.parse, then the check. */
const check = (value: unknown): DeviceTarget =>
  verifySignedTarget(JSON.parse(JSON.stringify(value)) as unknown, online.publicKey, uuid, now);
const reason = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    if (error instanceof TargetRefusedError) return error.reason;
    throw error;
  }
  return 'accepted';
};

describe('signed device targets', () => {
  it('accepts a target signed by the pinned key, for this device, before it expires', () => {
    const target = signed();
    expect(check(target)).toEqual(target);
    expect(JSON.parse(JSON.stringify(target))).toEqual(target);
  });

  it('accepts the volume purges it carries, signed with the rest', () => {
    expect(check(signed({ volumePurges: ['data', 'old.cache'] })).volumePurges).toEqual([
      'data',
      'old.cache',
    ]);
    const moved = { ...signed(), volumePurges: ['data'] };
    expect(reason(() => check(moved))).toBe('signature');
  });

  it('carries the configuration variables signed with the rest', () => {
    const variables = {
      version: 4,
      fleet: { SITE: 'north' },
      fleetServices: { web: { PORT: '80' } },
      device: {},
      deviceServices: {},
    };
    expect(check(signed({ variables })).variables).toEqual(variables);
    const changed = signed({ variables });
    changed.variables = { ...variables, fleet: { SITE: 'attacker' } };
    expect(reason(() => check(changed))).toBe('signature');
    const raised = signed({ variables });
    raised.variables = { ...variables, version: 99 };
    expect(reason(() => check(raised))).toBe('signature');
  });

  it('accepts a target also signed by a key it does not know (the next key during a rotation)', () => {
    const next = keyPair();
    const both = signTarget(unsigned({ onlineKey: next.publicKey }), [next.privateKey, online.privateKey]);
    expect(check(both).onlineKey).toBe(next.publicKey);
    expect(reason(() => verifySignedTarget(both, keyPair().publicKey, uuid, now))).toBe('signature');
  });

  it('refuses any change after signing, a signature by another key, and one moved from another target', () => {
    const target = signed();
    const tampered: [string, (t: DeviceTarget) => void][] = [
      ['target version', (t) => (t.targetVersion += 1)],
      ['expiry', (t) => (t.expires = new Date(now + 9e9).toISOString())],
      ['rollback mark', (t) => (t.rollback = true)],
      ['release', (t) => (t.release!.id = 'r-9')],
      ['download plan', (t) => (t.layers[0]!.size = 11)],
      ['added field', (t) => ((t as unknown as Record<string, unknown>).extra = 1)],
      ['online key', (t) => (t.onlineKey = keyPair().publicKey)],
    ];
    for (const [what, change] of tampered) {
      const copy = JSON.parse(JSON.stringify(target)) as DeviceTarget;
      change(copy);
      expect([what, reason(() => check(copy))]).toEqual([what, 'signature']);
    }
    const forged = signTarget(unsigned(), [keyPair().privateKey]);
    expect(reason(() => check(forged))).toBe('signature');
    const other = signed({ targetVersion: 8 });
    expect(reason(() => check({ ...target, signatures: other.signatures }))).toBe('signature');
    const unsignedAnswer: Partial<DeviceTarget> = { ...target };
    delete unsignedAnswer.signatures;
    expect(() => check(unsignedAnswer)).toThrow(/carries no signature/);
  });

  it("refuses another device's target and an expired one (the clock is the caller's)", () => {
    expect(reason(() => check(signed({ uuid: 'b'.repeat(32) })))).toBe('device');
    const expires = new Date(now + 1000).toISOString();
    const target = signed({ expires });
    expect(verifySignedTarget(target, online.publicKey, uuid, now + 999)).toBeTruthy();
    expect(reason(() => verifySignedTarget(target, online.publicKey, uuid, now + 1000))).toBe('expired');
  });

  it('refuses a lower target version (replay) and an older release unless the target is a rollback', () => {
    const held = { targetVersion: 7, releaseVersion: 3 };
    expect(reason(() => checkTargetProgress(signed(), held))).toBe('accepted');
    expect(reason(() => checkTargetProgress(signed({ targetVersion: 6 }), held))).toBe('replay');
    expect(reason(() => checkTargetProgress(signed({}, 2), held))).toBe('downgrade');
    expect(reason(() => checkTargetProgress(signed({ rollback: true }, 2), held))).toBe('accepted');
    expect(reason(() => checkTargetProgress(signed({ release: null }), held))).toBe('accepted');
    // The version judged is the manifest's (signed by the release owner), and both must agree.
    const lying = unsigned({}, 2);
    lying.release!.version = 5;
    expect(reason(() => checkTargetProgress(signTarget(lying, [online.privateKey]), held))).toBe('malformed');
  });

  describe('hostile answers: refused as malformed (or unsigned), never a crash', () => {
    const base = (): Record<string, unknown> =>
      JSON.parse(JSON.stringify(signed())) as Record<string, unknown>;
    const hostile: [string, unknown][] = [
      ['null', null],
      ['a number', 42],
      ['a string', 'target'],
      ['an array', [base()]],
      ['an empty object', {}],
      ['no uuid', { ...base(), uuid: undefined }],
      ['a uuid object', { ...base(), uuid: { toString: 'x' } }],
      ['a huge uuid', { ...base(), uuid: 'a'.repeat(100_000) }],
      ['a negative version', { ...base(), targetVersion: -1 }],
      ['a fractional version', { ...base(), targetVersion: 1.5 }],
      ['an unsafe version', { ...base(), targetVersion: 2 ** 60 }],
      ['a version string', { ...base(), targetVersion: '9' }],
      ['an expiry that is no date', { ...base(), expires: 'tomorrow' }],
      ['an expiry number', { ...base(), expires: now + 1000 }],
      ['a rollback string', { ...base(), rollback: 'true' }],
      ['an online key array', { ...base(), onlineKey: ['-----BEGIN'] }],
      ['signatures not a list', { ...base(), signatures: { keyId: 'x' } }],
      ['no signatures', { ...base(), signatures: [] }],
      [
        'too many signatures',
        { ...base(), signatures: Array(MAX_TARGET_SIGNATURES + 1).fill((base().signatures as unknown[])[0]) },
      ],
      ['a signature entry null', { ...base(), signatures: [null] }],
      [
        'a huge signature',
        { ...base(), signatures: [{ keyId: 'a'.repeat(64), signature: 'A'.repeat(10_000) }] },
      ],
      ['a release string', { ...base(), release: 'r-3' }],
      ['a release without manifest', { ...base(), release: { id: 'r-3', version: 3 } }],
      [
        'a manifest without services',
        { ...base(), release: { id: 'r-3', version: 3, manifest: { version: 3 } } },
      ],
      ['layers not a list', { ...base(), layers: 'all' }],
      ['a layer null', { ...base(), layers: [null] }],
      [
        'a layer with a string download',
        { ...base(), layers: [{ service: 'a', diffId: 'd', size: 1, download: 'x' }] },
      ],
      [
        'too many layers',
        { ...base(), layers: Array(5000).fill({ service: 'a', diffId: 'd', size: 1, download: null }) },
      ],
      ['configs not a list', { ...base(), configs: null }],
      ['no rotation chain', { ...base(), releaseTrustChain: undefined }],
      ['a rotation chain object', { ...base(), releaseTrustChain: { trust: {} } }],
      [
        'a rotation without keys',
        { ...base(), releaseTrustChain: [{ trust: { version: 2, threshold: 1 }, signatures: [] }] },
      ],
      [
        'a rotation with a key number',
        {
          ...base(),
          releaseTrustChain: [{ trust: { version: 2, keys: [1], threshold: 1 }, signatures: [] }],
        },
      ],
      [
        'too many rotations',
        {
          ...base(),
          releaseTrustChain: Array(MAX_TRUST_CHAIN + 1).fill({
            trust: { version: 2, keys: [], threshold: 1 },
            signatures: [],
          }),
        },
      ],
      ['volume purges not a list', signed({ volumePurges: 'data' as unknown as string[] })],
      ['a volume purge that is no name', signed({ volumePurges: ['../etc'] })],
      ['a volume purge number', signed({ volumePurges: [7 as unknown as string] })],
      ['too many volume purges', signed({ volumePurges: Array(300).fill('data') as string[] })],
      ['variables not an object', signed({ variables: 'x' as never })],
      [
        'a variable that is no string',
        signed({
          variables: {
            version: 1,
            fleet: { A: 1 },
            fleetServices: {},
            device: {},
            deviceServices: {},
          } as never,
        }),
      ],
      [
        'a variables version that is no count',
        signed({ variables: { version: -1, fleet: {}, fleetServices: {}, device: {}, deviceServices: {} } }),
      ],
      [
        'a service level that is a string',
        signed({
          variables: {
            version: 1,
            fleet: {},
            fleetServices: { w: 'x' } as never,
            device: {},
            deviceServices: {},
          },
        }),
      ],
    ];
    it.each(hostile)('%s', (_what, value) => {
      const outcome = reason(() => verifySignedTarget(value, online.publicKey, uuid, now));
      expect(['malformed', 'signature']).toContain(outcome);
    });

    it('a __proto__ key in the answer neither pollutes objects nor passes the signature', () => {
      const text = JSON.stringify(base()).replace('{', '{"__proto__":{"polluted":true},');
      expect(reason(() => verifySignedTarget(JSON.parse(text), online.publicKey, uuid, now))).toBe(
        'signature',
      );
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('a layer list nested 100,000 deep is refused, not a stack overflow', () => {
      let deep: unknown = [];
      for (let i = 0; i < 100_000; i++) deep = [deep];
      const value = { ...base(), configs: deep };
      expect(['malformed', 'signature']).toContain(
        reason(() => verifySignedTarget(value, online.publicKey, uuid, now)),
      );
    });

    it('a pinned key that is not a key refuses everything', () => {
      expect(reason(() => verifySignedTarget(signed(), 'not a key', uuid, now))).toBe('signature');
    });
  });
});
