import { generateKeyPairSync } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { ConflictError, OnlineKey, releaseKeyId } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { TargetKeyRecord, TargetKeysRepository } from './target-keys.repository';

/** How long a replica reuses the keys it read: a rotation on another replica reaches it within this. */
const CACHE_MS = 5000;

/** The keys that sign now: the current one, and the one before it while devices learn the new one. */
export interface SigningKeys {
  current: TargetKeyRecord;
  previous: TargetKeyRecord | null;
}

/**
 * The server's online keys (ed25519) that sign device targets (docs/security.md "Signed targets"):
 * generated on first use and stored in the database, so every replica signs with the same key; a
 * rotation adds a key that signs from then on while the one before it co-signs, so a device that
 * pinned the old key verifies a target naming the new one and pins that.
 */
@Injectable()
export class TargetKeysService {
  private cached: { keys: SigningKeys; at: number } | null = null;

  constructor(
    private readonly repository: TargetKeysRepository,
    private readonly clock: Clock,
  ) {}

  async signingKeys(): Promise<SigningKeys> {
    if (this.cached && this.clock.nowMs() - this.cached.at < CACHE_MS) return this.cached.keys;
    let all = await this.repository.all();
    if (all.length === 0) {
      await this.repository.insertIfAbsent(this.generate(1));
      all = await this.repository.all();
    }
    const keys: SigningKeys = { current: all[0]!, previous: all[1] ?? null };
    this.cached = { keys, at: this.clock.nowMs() };
    return keys;
  }

  /** The public key a registering device pins. */
  async currentPublicKey(): Promise<string> {
    return (await this.signingKeys()).current.publicKey;
  }

  async list(): Promise<OnlineKey[]> {
    await this.signingKeys();
    return (await this.repository.all()).map((k, i) => ({
      seq: k.seq,
      keyId: k.keyId,
      publicKey: k.publicKey,
      role: i === 0 ? 'current' : i === 1 ? 'previous' : 'retired',
      createdAt: k.createdAt,
    }));
  }

  /**
   * A new current key. The one it replaces co-signs until the next rotation, which is when the one
   * before it stops counting: devices that missed two rotations must be re-registered (docs/security.md).
   */
  async rotate(): Promise<OnlineKey> {
    const { current } = await this.signingKeys();
    const next = this.generate(current.seq + 1);
    if (!(await this.repository.insertIfAbsent(next)))
      throw new ConflictError('another rotation of the online key happened at the same time; list the keys');
    this.cached = null;
    return {
      seq: next.seq,
      keyId: next.keyId,
      publicKey: next.publicKey,
      role: 'current',
      createdAt: next.createdAt,
    };
  }

  private generate(seq: number): TargetKeyRecord {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    return {
      seq,
      keyId: releaseKeyId(publicPem),
      publicKey: publicPem,
      privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      createdAt: this.clock.iso(),
    };
  }
}
