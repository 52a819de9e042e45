import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import {
  ApiKey,
  ConflictError,
  CreateApiKey,
  CreatedApiKey,
  NotFoundError,
  Principal,
  ValidationError,
} from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { ApiKeyRecord, ApiKeysRepository } from './api-keys.repository';
import { FleetScopeRepository } from './fleet-scope.repository';
import { BOOTSTRAP_SETTING, PrincipalsService } from './principals.service';
import { hashSecret, newSecret } from './secrets';

/** Every operator key starts with this, so a leaked one is easy to recognise (and to grep for). */
export const API_KEY_PREFIX = 'fk_';

function publicKey({ keyHash: _hash, ...key }: ApiKeyRecord): ApiKey {
  return key;
}

/** Creates, lists and revokes operator API keys; turns the bootstrap admin token off. */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly keys: ApiKeysRepository,
    private readonly scopes: FleetScopeRepository,
    private readonly principals: PrincipalsService,
    private readonly clock: Clock,
  ) {}

  async create(input: CreateApiKey, by: Principal): Promise<CreatedApiKey> {
    if (await this.keys.findByName(input.name))
      throw new ConflictError(`an API key named ${input.name} exists`);
    const given = input.fleets ?? [];
    if (input.role === 'admin' && given.length > 0)
      throw new ValidationError('fleets: an admin key acts on every fleet; give no fleets');
    const fleetIds: string[] = [];
    for (const fleet of given) {
      const id = await this.scopes.fleetByIdOrSlug(fleet);
      if (!id) throw new ValidationError(`fleets: no fleet ${fleet}`);
      if (!fleetIds.includes(id)) fleetIds.push(id);
    }
    if (input.expiresAt !== undefined && Date.parse(input.expiresAt) <= this.clock.nowMs())
      throw new ValidationError('expiresAt: must be in the future');
    const secret = `${API_KEY_PREFIX}${newSecret()}`;
    const record: ApiKeyRecord = {
      id: randomUUID(),
      name: input.name,
      role: input.role,
      fleetIds: fleetIds.length > 0 ? fleetIds : null,
      prefix: secret.slice(0, 10),
      createdAt: this.clock.iso(),
      createdBy: by.name,
      expiresAt: input.expiresAt === undefined ? null : new Date(input.expiresAt).toISOString(),
      revokedAt: null,
      lastUsedAt: null,
      keyHash: hashSecret(secret),
    };
    try {
      await this.keys.insert(record);
    } catch (error) {
      // Two creations of one name at once: the unique index decides.
      if (await this.keys.findByName(input.name))
        throw new ConflictError(`an API key named ${input.name} exists`);
      throw error;
    }
    return { ...publicKey(record), key: secret };
  }

  async list(): Promise<ApiKey[]> {
    return (await this.keys.list()).map(publicKey);
  }

  /** Revokes a key by id or name; revoking a revoked key is a no-op that answers the key. */
  async revoke(idOrName: string): Promise<ApiKey> {
    const key = (await this.keys.findById(idOrName)) ?? (await this.keys.findByName(idOrName));
    if (!key) throw new NotFoundError(`no API key ${idOrName}`);
    await this.keys.revoke(key.id, this.clock.iso());
    return publicKey((await this.keys.findById(key.id)) ?? key);
  }

  async bootstrapEnabled(): Promise<boolean> {
    return !(await this.principals.bootstrapDisabled());
  }

  /**
   * Turns the bootstrap admin token off for good (every replica reads the setting from the database).
   * Refused while no working admin key exists, so the server cannot be locked out by mistake.
   */
  async disableBootstrap(): Promise<void> {
    if (!(await this.keys.hasActiveAdmin(this.clock.iso())))
      throw new ConflictError('create an admin API key first (ferry keys create NAME --role admin)');
    await this.keys.setSetting(BOOTSTRAP_SETTING, 'disabled');
  }
}
