import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readCliEnv } from './cli-env';
import {
  forgetToken,
  readSavedLogin,
  requireCredentials,
  resolveCredentials,
  saveLogin,
} from './config-file';
import { InputError, NotLoggedInError } from './errors';

describe('the saved login', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is found at FERRY_CONFIG, else under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(readCliEnv({ FERRY_CONFIG: '/x/c.json', XDG_CONFIG_HOME: '/y' }).configPath).toBe('/x/c.json');
    expect(readCliEnv({ XDG_CONFIG_HOME: '/y' }).configPath).toBe('/y/ferry/config.json');
    expect(readCliEnv({}).configPath).toMatch(/\/\.config\/ferry\/config\.json$/);
  });

  it('is written 0600 in a 0700 folder, replacing the old file and leaving no temporary file', async () => {
    const path = join(dir, 'ferry', 'config.json');
    await saveLogin(path, { url: 'http://a', token: 't1' });
    await saveLogin(path, { url: 'http://b', token: 't2' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ferry')).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(dir, 'ferry'))).toEqual(['config.json']);
    expect(await readSavedLogin(path)).toEqual({ url: 'http://b', token: 't2' });
  });

  it('lets FERRY_URL and FERRY_TOKEN override it, and says where each value came from', async () => {
    const configPath = join(dir, 'config.json');
    await saveLogin(configPath, { url: 'http://saved', token: 'saved-token' });
    expect(await resolveCredentials({ configPath })).toEqual({
      url: 'http://saved',
      token: 'saved-token',
      urlFrom: configPath,
      tokenFrom: configPath,
    });
    expect(await resolveCredentials({ configPath, token: 'env-token' })).toMatchObject({
      token: 'env-token',
      tokenFrom: 'FERRY_TOKEN',
      urlFrom: configPath,
    });
  });

  it('is required by server commands: none, or a forgotten token, is "not logged in"', async () => {
    const configPath = join(dir, 'config.json');
    await expect(requireCredentials({ configPath })).rejects.toBeInstanceOf(NotLoggedInError);
    await saveLogin(configPath, { url: 'http://saved', token: 'saved-token' });
    expect(await forgetToken(configPath)).toBe(true);
    await expect(requireCredentials({ configPath })).rejects.toThrow(/not logged in/);
    expect(await readSavedLogin(configPath)).toEqual({ url: 'http://saved', token: '' });
    // Nothing left to forget: `ferry logout` says so instead of claiming it logged out.
    expect(await forgetToken(configPath)).toBe(false);
    expect(await forgetToken(join(dir, 'never-saved.json'))).toBe(false);
  });

  it('a file that is not JSON is an input error naming it', async () => {
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, 'url=http://x');
    await expect(readSavedLogin(configPath)).rejects.toThrow(InputError);
    await expect(readSavedLogin(configPath)).rejects.toThrow(`${configPath} is not valid JSON`);
  });
});
