import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import {
  ConflictError,
  CreateFleet,
  CreatedProvisioningKey,
  Fleet,
  NotFoundError,
  ProvisioningKey,
  slugify,
} from '@ferry/protocol';
import { hashSecret, newSecret } from '../auth/secrets';
import { FleetRecord, FleetsRepository } from './fleets.repository';

/** Strips the private signing key before a fleet leaves the server. */
export function publicFleet(fleet: FleetRecord): Fleet {
  const { signingPrivateKey: _secret, ...rest } = fleet;
  return rest;
}

@Injectable()
export class FleetsService {
  constructor(private readonly fleets: FleetsRepository) {}

  async create(input: CreateFleet): Promise<Fleet> {
    const slug = input.slug ?? (await this.freeSlug(slugify(input.name)));
    if (input.slug && (await this.fleets.slugTaken(slug)))
      throw new ConflictError(`fleet slug "${slug}" is taken`);
    // Each fleet signs its release manifests with its own ed25519 key; devices pin the public half.
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const fleet: FleetRecord = {
      id: randomUUID(),
      name: input.name,
      slug,
      arch: input.arch,
      signingPublicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      signingPrivateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      createdAt: new Date().toISOString(),
    };
    await this.fleets.insert(fleet);
    return publicFleet(fleet);
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
      createdAt: new Date().toISOString(),
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
    if (!(await this.fleets.revokeKey(fleet.id, keyId, new Date().toISOString()))) {
      throw new NotFoundError(`fleet ${fleet.slug} has no provisioning key ${keyId}`);
    }
  }

  /** The fleet a provisioning key belongs to, or null when the key is unknown or revoked. */
  async fleetOfProvisioningKey(key: string): Promise<FleetRecord | null> {
    return this.fleets.fleetOfKey(hashSecret(key));
  }

  private async freeSlug(base: string): Promise<string> {
    for (let n = 1; ; n += 1) {
      const candidate = n === 1 ? base : `${base.slice(0, 60)}-${n}`;
      if (!(await this.fleets.slugTaken(candidate))) return candidate;
    }
  }
}
