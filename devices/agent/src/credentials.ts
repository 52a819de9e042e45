import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
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
  mqttUrl?: string;
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
        mqttUrl: answer.mqtt.url,
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
