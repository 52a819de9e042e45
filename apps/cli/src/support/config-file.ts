import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

import { writeFileDurable } from '@ferry/storage';
import type { CliEnv } from './cli-env';
import { InputError, NotLoggedInError } from './errors';

/** What `ferry login` saves. */
export interface SavedLogin {
  url: string;
  token: string;
}

/** The URL and token in use, and where each came from (an environment variable or the file). */
export interface Credentials {
  url: string;
  token: string;
  urlFrom: string;
  tokenFrom: string;
}

/** Reads the saved login; null when there is none. A file that is not ours is an input error. */
export async function readSavedLogin(path: string): Promise<Partial<SavedLogin> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new InputError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return {
      url: typeof parsed.url === 'string' ? parsed.url : undefined,
      token: typeof parsed.token === 'string' ? parsed.token : undefined,
    };
  } catch {
    throw new InputError(`${path} is not valid JSON; fix it or run ferry login again`);
  }
}

/**
 * Saves the login with mode 0600 atomically: a temporary file in the same folder, fsynced, renamed over
 * the old one, so a crash leaves the old or the new file and the token is never world-readable.
 */
export async function saveLogin(path: string, login: SavedLogin): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileDurable(path, JSON.stringify(login, null, 2) + '\n', 0o600);
}

/** Forgets the saved token (keeps the URL so the next login is shorter). */
export async function forgetToken(path: string): Promise<boolean> {
  const saved = await readSavedLogin(path);
  if (!saved?.token) return false;
  if (saved.url) await saveLogin(path, { url: saved.url, token: '' });
  else await rm(path, { force: true });
  return true;
}

/** The URL and token to use: `FERRY_URL`/`FERRY_TOKEN` over the saved login. */
export async function resolveCredentials(env: CliEnv): Promise<Partial<Credentials>> {
  const saved = (await readSavedLogin(env.configPath)) ?? {};
  const url = env.url ?? saved.url;
  const token = env.token ?? (saved.token || undefined);
  return {
    url,
    token,
    urlFrom: env.url ? 'FERRY_URL' : url ? env.configPath : undefined,
    tokenFrom: env.token ? 'FERRY_TOKEN' : token ? env.configPath : undefined,
  };
}

/** Like {@link resolveCredentials}, but both must be there. */
export async function requireCredentials(env: CliEnv): Promise<Credentials> {
  const found = await resolveCredentials(env);
  if (!found.url || !found.token || !found.urlFrom || !found.tokenFrom) {
    throw new NotLoggedInError(
      'not logged in: run "ferry login --url URL --token TOKEN" or set FERRY_URL and FERRY_TOKEN',
    );
  }
  return found as Credentials;
}
