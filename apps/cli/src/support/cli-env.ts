import { homedir } from 'node:os';
import { join } from 'node:path';

/** Everything the CLI takes from its environment, read in this one place. */
export interface CliEnv {
  /** Where `ferry login` saves the URL and token. */
  configPath: string;
  /** `FERRY_URL`: overrides the saved URL. */
  url?: string;
  /** `FERRY_TOKEN`: overrides the saved token. */
  token?: string;
}

/**
 * `FERRY_CONFIG`, else `$XDG_CONFIG_HOME/ferry/config.json`, else `~/.config/ferry/config.json`.
 */
export function readCliEnv(env: NodeJS.ProcessEnv = process.env): CliEnv {
  const configHome = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return {
    configPath: env.FERRY_CONFIG || join(configHome, 'ferry', 'config.json'),
    url: env.FERRY_URL || undefined,
    token: env.FERRY_TOKEN || undefined,
  };
}
