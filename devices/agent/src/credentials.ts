import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ReleaseTrust } from '@ferry/protocol/wire';
import { readJson, writeFileAtomic } from './atomic-file';
import { AgentConfigError, HttpStatusError } from './errors';
import type { Logger } from './log';
import type { ServerApi } from './server-api';

export const AGENT_VERSION = '0.1.0';

/** What the agent keeps of its registration (mode 0600). */
export interface Credentials {
  uuid: string;
  apiKey: string;
  /** Written before the server call, so a crash in between repeats the same registration. */
  registered: boolean;
  fleetId?: string;
  /** The fleet's release-signing public key (PEM), pinned at registration and never replaced. */
  signingPublicKey?: string;
  /**
   * The fleet's release keys and threshold, pinned at registration (docs/security.md): when set, a
   * release runs only if the threshold of these keys signed its manifest, whatever the server says.
   * Null (or absent, from an older agent): the fleet's releases are signed by the server's key above.
   */
  releaseTrust?: ReleaseTrust | null;
  mqttUrl?: string;
  /**
   * The server's online public key (PEM) that signs this device's targets, pinned at registration and
   * replaced only by a key named in a target the pinned one signed (a rotation). Null (absent, from an
   * older agent): pinned from the first target on first use.
   */
  targetKey?: string | null;
}

export function credentialsPath(dataDir: string): string {
  return join(dataDir, 'credentials.json');
}

/**
 * Registers once, as balena's supervisor does: the device makes its own UUID and 32-byte key,
 * stores them, then registers them with the provisioning key. The server answers 200 to a repeated
 * registration of the same pair, so a crash between the call and the write is harmless; a 409
 * (another device owns the UUID) draws a fresh pair.
 */
export async function ensureRegistered(
  api: ServerApi,
  dataDir: string,
  provisioningKey: string | null,
  name: string | null,
  log: Logger,
): Promise<Required<Credentials>> {
  const path = credentialsPath(dataDir);
  let creds = await readJson<Credentials>(path);
  if (creds?.registered && creds.signingPublicKey && creds.fleetId && creds.mqttUrl)
    return creds as Required<Credentials>;
  if (!provisioningKey)
    throw new AgentConfigError('FERRY_PROVISIONING_KEY is required until the device is registered');
  const fresh = (): Credentials => ({
    uuid: randomBytes(16).toString('hex'),
    apiKey: randomBytes(32).toString('base64url'),
    registered: false,
  });
  if (!creds) {
    creds = fresh();
    await writeFileAtomic(path, JSON.stringify(creds));
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await api.register({
        provisioningKey,
        uuid: creds.uuid,
        apiKey: creds.apiKey,
        agentVersion: AGENT_VERSION,
        ...(name ? { name } : {}),
      });
      const done: Required<Credentials> = {
        uuid: answer.uuid,
        apiKey: answer.apiKey,
        registered: true,
        fleetId: answer.fleet.id,
        signingPublicKey: answer.fleet.signingPublicKey,
        releaseTrust: answer.fleet.releaseTrust ?? null,
        mqttUrl: answer.mqtt.url,
        targetKey: answer.targetKey ?? null,
      };
      await writeFileAtomic(path, JSON.stringify(done));
      log.info('registered', { uuid: done.uuid, fleetId: done.fleetId });
      return done;
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 409 && attempt < 3) {
        log.warn('device UUID taken, drawing a new identity', { uuid: creds.uuid });
        creds = fresh();
        await writeFileAtomic(path, JSON.stringify(creds));
        continue;
      }
      throw error;
    }
  }
}

/**
 * Pins what a verified target carried: a new online key (a rotation the old key signed, or the first
 * key of an older agent's device), or the fleet's release keys after a rotation their previous
 * threshold signed.
 */
export async function pinTrust(
  dataDir: string,
  creds: Required<Credentials>,
  change: Pick<Credentials, 'targetKey' | 'releaseTrust'>,
): Promise<Required<Credentials>> {
  const next = { ...creds, ...change };
  await writeFileAtomic(credentialsPath(dataDir), JSON.stringify(next));
  return next;
}
