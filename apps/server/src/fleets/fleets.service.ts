import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import {
  BindMounts,
  ConflictError,
  CreateFleet,
  CreatedProvisioningKey,
  Fleet,
  NotFoundError,
  ForbiddenError,
  ManifestSignatureError,
  ProvisioningKey,
  ReleaseTrust,
  ReleaseTrustStep,
  RotateReleaseTrust,
  ValidationError,
  checkReleaseTrust,
  slugify,
  verifyThreshold,
} from '@ferry/protocol';
import { hashSecret, newSecret } from '../auth/secrets';
import { Clock } from '../clock/clock';
import { FleetRecord, FleetsRepository } from './fleets.repository';

/** Strips the private signing key before a fleet leaves the server. */
export function publicFleet(fleet: FleetRecord): Fleet {
  const { signingPrivateKey: _secret, ...rest } = fleet;
  return rest;
}

@Injectable()
export class FleetsService {
  constructor(
    private readonly fleets: FleetsRepository,
    private readonly clock: Clock,
  ) {}

  async create(input: CreateFleet): Promise<Fleet> {
    const slug = input.slug ?? slugify(input.name);
    // A taken slug is refused, never silently suffixed (`pumps-2` is not what the operator typed).
    if (await this.fleets.slugTaken(slug))
      throw new ConflictError(
        input.slug
          ? `fleet slug "${slug}" is taken: choose another slug`
          : `a fleet with slug "${slug}" exists (the slug comes from the name "${input.name}"): choose another name, or give another slug ("slug" in the body, --slug in the CLI)`,
        { slug },
      );
    // Each fleet signs its release manifests with its own ed25519 key; devices pin the public half.
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const fleet: FleetRecord = {
      id: randomUUID(),
      name: input.name,
      slug,
      arch: input.arch,
      signingPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      signingPrivateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      releaseTrust: this.initialTrust(input),
      createdAt: this.clock.iso(),
    };
    await this.fleets.insert(fleet);
    return publicFleet(fleet);
  }

  /** Version 1 of the fleet's release keys, from its creation (null: the server signs its releases). */
  private initialTrust(input: CreateFleet): ReleaseTrust | null {
    if (!input.releaseKeys) {
      if (input.releaseThreshold !== undefined)
        throw new ValidationError('releaseThreshold: give releaseKeys too (ferry keys generate-release-key)');
      return null;
    }
    const trust: ReleaseTrust = {
      version: 1,
      keys: input.releaseKeys,
      threshold: input.releaseThreshold ?? 1,
    };
    checkReleaseTrust(trust);
    return trust;
  }

  /**
   * Rotates the fleet's release keys: the new set must carry the next version and the signatures of
   * the threshold of the current keys, so whoever holds the server cannot swap in their own keys.
   */
  async rotateReleaseTrust(idOrSlug: string, input: RotateReleaseTrust): Promise<Fleet> {
    const fleet = await this.get(idOrSlug);
    const current = fleet.releaseTrust;
    if (!current)
      throw new ConflictError(`fleet ${fleet.slug} has no release keys: the server signs its releases`);
    const next: ReleaseTrust = input.trust;
    if (next.version !== current.version + 1)
      throw new ConflictError(
        `the fleet's release keys are at version ${current.version}: sign version ${current.version + 1}`,
      );
    checkReleaseTrust(next, 'trust.keys');
    try {
      verifyThreshold(next, input.signatures, current, `release keys version ${next.version}`);
    } catch (error) {
      if (error instanceof ManifestSignatureError) throw new ForbiddenError(error.message);
      throw error;
    }
    if (!(await this.fleets.rotateTrust(fleet.id, next, input.signatures, this.clock.iso())))
      throw new ConflictError('the release keys changed meanwhile: fetch the fleet and sign again');
    return publicFleet({ ...fleet, releaseTrust: next });
  }

  /** The fleet's release-key rotations that devices follow (docs/security.md), oldest first. */
  async trustChain(fleetId: string): Promise<ReleaseTrustStep[]> {
    return this.fleets.trustChain(fleetId);
  }

  async list(): Promise<Fleet[]> {
    return (await this.fleets.list()).map(publicFleet);
  }

  /** The fleet with this id or slug, with its private key, for server-side use. */
  async get(idOrSlug: string): Promise<FleetRecord> {
    const fleet = await this.fleets.find(idOrSlug);
    if (!fleet) throw new NotFoundError(`no fleet "${idOrSlug}"`);
    return fleet;
  }

  async createKey(idOrSlug: string, name?: string): Promise<CreatedProvisioningKey> {
    const fleet = await this.get(idOrSlug);
    const key = `fp_${newSecret()}`;
    const record: ProvisioningKey = {
      id: randomUUID(),
      fleetId: fleet.id,
      name: name ?? null,
      prefix: key.slice(0, 9),
      createdAt: this.clock.iso(),
      revokedAt: null,
    };
    await this.fleets.insertKey(record, hashSecret(key));
    return { ...record, key };
  }

  async listKeys(idOrSlug: string): Promise<ProvisioningKey[]> {
    return this.fleets.listKeys((await this.get(idOrSlug)).id);
  }

  async revokeKey(idOrSlug: string, keyId: string): Promise<void> {
    const fleet = await this.get(idOrSlug);
    if (!(await this.fleets.revokeKey(fleet.id, keyId, this.clock.iso()))) {
      throw new NotFoundError(`fleet ${fleet.slug} has no provisioning key ${keyId}`);
    }
  }

  /** The fleet a provisioning key belongs to, or null when the key is unknown or revoked. */
  async fleetOfProvisioningKey(key: string): Promise<FleetRecord | null> {
    return this.fleets.fleetOfKey(hashSecret(key));
  }

  /** Host paths the fleet's compose releases may bind-mount (the path or anything under it). */
  async bindMounts(fleetId: string): Promise<string[]> {
    return this.fleets.bindMounts(fleetId);
  }

  async setBindMounts(idOrSlug: string, paths: string[]): Promise<BindMounts> {
    const fleet = await this.get(idOrSlug);
    const unique = [...new Set(paths.map((p) => posix.normalize(p).replace(/(.)\/+$/, '$1')))].sort();
    await this.fleets.setBindMounts(fleet.id, unique);
    return { paths: unique };
  }
}
