import { Injectable } from '@nestjs/common';
import { Principal } from '@ferry/protocol';
import { Clock } from '../clock/clock';
import { AdminTokenService } from './admin-token.service';
import { ApiKeysRepository } from './api-keys.repository';
import { hashSecret } from './secrets';

/** Setting name in `server_settings`: `disabled` once an admin turned the bootstrap token off. */
export const BOOTSTRAP_SETTING = 'bootstrap_token';
/** A key's last use is written at most this often, so reads do not each cost a database write. */
const TOUCH_EVERY_MS = 60_000;

/** Turns a bearer token into the operator it belongs to: an API key, or the bootstrap admin token. */
@Injectable()
export class PrincipalsService {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly adminToken: AdminTokenService,
    private readonly keys: ApiKeysRepository,
    private readonly clock: Clock,
  ) {}

  /** The operator a token proves, or null (unknown, revoked or expired key; disabled bootstrap token). */
  async authenticate(token: string): Promise<Principal | null> {
    if (this.adminToken.matches(token)) {
      if (await this.bootstrapDisabled()) return null;
      return { name: 'bootstrap', role: 'admin', keyId: null, fleetIds: null };
    }
    const key = await this.keys.findByHash(hashSecret(token));
    if (!key || key.revokedAt !== null) return null;
    const now = this.clock.nowMs();
    if (key.expiresAt !== null && Date.parse(key.expiresAt) <= now) return null;
    if (now - (this.touched.get(key.id) ?? 0) >= TOUCH_EVERY_MS) {
      this.touched.set(key.id, now);
      await this.keys.touch(key.id, this.clock.iso());
    }
    return { name: key.name, role: key.role, keyId: key.id, fleetIds: key.fleetIds };
  }

  async bootstrapDisabled(): Promise<boolean> {
    return (await this.keys.setting(BOOTSTRAP_SETTING)) === 'disabled';
  }
}
