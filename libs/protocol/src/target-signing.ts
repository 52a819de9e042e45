// Zod-free on purpose: the device agent checks signed targets with this file through
// @ferry/protocol/wire, the server signs with it, so both hash the same bytes by construction.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json';
import type { DeviceTarget } from './device-target';
import { deviceVariablesProblem } from './variable-levels';
import { updatePolicyProblem } from './update-policy';
import { TargetRefusedError, type TargetRefusal } from './errors';
import { releaseKeyId, type ReleaseSignature } from './release-signing';

/** Prefixed to the canonical JSON a target signature covers, so no other signed document can pass for one. */
export const TARGET_SIGNING_CONTEXT = 'ferry.device-target.v1\n';
/** The most signatures a target carries: the online key and, during a rotation, the one before it. */
export const MAX_TARGET_SIGNATURES = 4;
/** The most release-key rotations a target carries. */
export const MAX_TRUST_CHAIN = 256;
/** The longest target answer an agent reads (the "endless data" attack): 16 MiB. */
export const MAX_TARGET_BYTES = 16 * 1024 * 1024;

/** A target without its signatures: what the signatures cover. */
export type UnsignedTarget = Omit<DeviceTarget, 'signatures'>;

/** What a device remembers to judge the next target: the highest it has accepted and run. */
export interface HeldTargetState {
  /** The highest `targetVersion` accepted (0 before the first). */
  targetVersion: number;
  /** The highest release version the device has run (0 before the first). */
  releaseVersion: number;
}

/** The bytes a target signature covers: the context line, then the canonical JSON without `signatures`. */
export function targetSigningBytes(target: UnsignedTarget | DeviceTarget): Buffer {
  const { signatures: _ignored, ...rest } = target as DeviceTarget;
  return Buffer.from(TARGET_SIGNING_CONTEXT + canonicalJson(rest));
}

/** Signs a target with each of the server's online private keys (PEM). */
export function signTarget(target: UnsignedTarget, privateKeysPem: readonly string[]): DeviceTarget {
  const bytes = targetSigningBytes(target);
  const signatures: ReleaseSignature[] = privateKeysPem.map((pem) => {
    const key = createPrivateKey(pem);
    const publicPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
    return { keyId: releaseKeyId(publicPem), signature: sign(null, bytes, key).toString('base64') };
  });
  return { ...target, signatures };
}

const KEY_ID = /^[0-9a-f]{64}$/;
/** A compose volume name (ComposeNameSchema's rule, without zod). */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

function refuse(reason: TargetRefusal, message: string): never {
  throw new TargetRefusedError(reason, message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks the shape of a target answer as far as the agent relies on it, without zod: every field the
 * checks and the updater read has its type and a bound. Throws {@link TargetRefusedError} (`malformed`).
 */
function checkShape(value: unknown): asserts value is DeviceTarget {
  if (!isObject(value)) refuse('malformed', 'the target is not a JSON object');
  const { uuid, targetVersion, expires, rollback, onlineKey, signatures, release, layers, configs } = value;
  const { volumePurges } = value;
  if (typeof uuid !== 'string' || uuid.length > 64) refuse('malformed', 'target.uuid is not a device UUID');
  if (!isCount(targetVersion)) refuse('malformed', 'target.targetVersion is not a whole number >= 0');
  if (typeof expires !== 'string' || expires.length > 40 || !Number.isFinite(Date.parse(expires)))
    refuse('malformed', 'target.expires is not a date');
  if (typeof rollback !== 'boolean') refuse('malformed', 'target.rollback is not true or false');
  if (typeof onlineKey !== 'string' || onlineKey.length > 1000)
    refuse('malformed', 'target.onlineKey is not a public key');
  if (!Array.isArray(signatures) || signatures.length === 0 || signatures.length > MAX_TARGET_SIGNATURES)
    refuse('malformed', `target.signatures must list 1 to ${MAX_TARGET_SIGNATURES} signatures`);
  for (const s of signatures as unknown[])
    if (
      !isObject(s) ||
      typeof s.keyId !== 'string' ||
      typeof s.signature !== 'string' ||
      s.signature.length > 200
    )
      refuse('malformed', 'target.signatures holds an entry that is not {keyId, signature}');
  if (release !== null) {
    if (!isObject(release)) refuse('malformed', 'target.release is neither null nor an object');
    if (typeof release.id !== 'string' || !isCount(release.version) || !isObject(release.manifest))
      refuse('malformed', 'target.release lacks an id, a version or a manifest');
    if (!isCount(release.manifest.version) || !Array.isArray(release.manifest.services))
      refuse('malformed', 'target.release.manifest lacks a version or services');
  }
  if (!Array.isArray(layers) || layers.length > 4096) refuse('malformed', 'target.layers is not a list');
  for (const layer of layers as unknown[])
    if (
      !isObject(layer) ||
      typeof layer.diffId !== 'string' ||
      typeof layer.service !== 'string' ||
      !isCount(layer.size) ||
      !(layer.download === null || isObject(layer.download))
    )
      refuse('malformed', 'target.layers holds an entry that is not a layer');
  if (!Array.isArray(configs) || configs.length > 4096) refuse('malformed', 'target.configs is not a list');
  const chain = value.releaseTrustChain;
  if (!Array.isArray(chain) || chain.length > MAX_TRUST_CHAIN)
    refuse('malformed', `target.releaseTrustChain is not a list of at most ${MAX_TRUST_CHAIN} rotations`);
  for (const step of chain as unknown[])
    if (
      !isObject(step) ||
      !isObject(step.trust) ||
      !isCount(step.trust.version) ||
      !Array.isArray(step.trust.keys) ||
      step.trust.keys.length > 64 ||
      !step.trust.keys.every((k) => typeof k === 'string' && k.length <= 1000) ||
      !isCount(step.trust.threshold) ||
      !Array.isArray(step.signatures) ||
      step.signatures.length > 64
    )
      refuse('malformed', 'target.releaseTrustChain holds an entry that is not a signed rotation');
  if (
    volumePurges !== undefined &&
    (!Array.isArray(volumePurges) ||
      volumePurges.length > 256 ||
      !volumePurges.every((v) => typeof v === 'string' && VOLUME_NAME.test(v)))
  )
    refuse('malformed', 'target.volumePurges is not a list of volume names');
  if (value.variables !== undefined && deviceVariablesProblem(value.variables) !== null)
    refuse('malformed', `target.variables: ${deviceVariablesProblem(value.variables)}`);
  if (value.updatePolicy !== undefined && updatePolicyProblem(value.updatePolicy) !== null)
    refuse('malformed', `target.updatePolicy: ${updatePolicyProblem(value.updatePolicy)}`);
}

/**
 * Checks a target answer before anything acts on it (docs/security.md "Signed targets"): its shape, a
 * valid signature by `pinnedKey` (the server's online key the device pinned), that it is addressed to
 * this device, and that it has not expired at `nowMs`. Returns the target; throws
 * {@link TargetRefusedError} saying which check failed.
 */
export function verifySignedTarget(
  value: unknown,
  pinnedKey: string,
  uuid: string,
  nowMs: number,
): DeviceTarget {
  if (isObject(value) && value.signatures === undefined)
    refuse('signature', 'the target carries no signature (a server older than the agent, or tampered)');
  checkShape(value);
  let keyId: string;
  try {
    keyId = releaseKeyId(pinnedKey);
  } catch {
    refuse('signature', 'the pinned online key is unusable');
  }
  let bytes: Buffer;
  try {
    bytes = targetSigningBytes(value);
  } catch (error) {
    refuse('malformed', `the target cannot be canonicalized: ${(error as Error).message}`);
  }
  const mine = value.signatures.filter((s) => KEY_ID.test(s.keyId) && s.keyId === keyId);
  const valid = mine.some((s) => {
    try {
      return verify(null, bytes, createPublicKey(pinnedKey), Buffer.from(s.signature, 'base64'));
    } catch {
      return false;
    }
  });
  if (!valid)
    refuse(
      'signature',
      `the target is not signed by the server's online key ${keyId.slice(0, 12)} the device pinned`,
    );
  if (value.uuid !== uuid) refuse('device', `the target is addressed to device ${value.uuid}, not ${uuid}`);
  if (Date.parse(value.expires) <= nowMs)
    refuse('expired', `the target expired at ${value.expires} (version ${value.targetVersion})`);
  return value;
}

/**
 * Checks a verified target against what the device holds: a lower target version is a replay, and a
 * release older than the highest the device has run is refused unless the target is a rollback the
 * operator (or a rollout's automatic rollback) asked for. The version compared is the manifest's, which
 * the release owner signed. Throws {@link TargetRefusedError}.
 */
export function checkTargetProgress(target: DeviceTarget, held: HeldTargetState): void {
  if (target.targetVersion < held.targetVersion)
    refuse(
      'replay',
      `target version ${target.targetVersion} is lower than ${held.targetVersion}, already accepted (a replayed target)`,
    );
  const release = target.release;
  if (!release) return;
  if (release.version !== release.manifest.version)
    refuse(
      'malformed',
      `release ${release.id} says version ${release.version}, its manifest ${release.manifest.version}`,
    );
  if (release.manifest.version < held.releaseVersion && !target.rollback)
    refuse(
      'downgrade',
      `release v${release.manifest.version} is older than v${held.releaseVersion} the device has run, and the target is not a requested rollback`,
    );
}
