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
  /** `FERRY_WATCH_HEARTBEAT_SECONDS` (default 30): a watch not at a terminal says what it waits for this often. */
  watchHeartbeatMs?: number;
}

/**
 * Hand-written rather than env-paths: Linux's XDG rule is the two lines below, and env-paths would
 * add a `-nodejs` suffix to the folder that docs and scripts already name.
 *
 * `FERRY_CONFIG`, else `$XDG_CONFIG_HOME/ferry/config.json`, else `~/.config/ferry/config.json`.
 */
export function readCliEnv(env: NodeJS.ProcessEnv = process.env): CliEnv {
  const configHome = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return {
    configPath: env.FERRY_CONFIG || join(configHome, 'ferry', 'config.json'),
    url: env.FERRY_URL || undefined,
    token: env.FERRY_TOKEN || undefined,
    watchHeartbeatMs:
      1000 * (Number(env.FERRY_WATCH_HEARTBEAT_SECONDS) > 0 ? Number(env.FERRY_WATCH_HEARTBEAT_SECONDS) : 30),
  };
}
