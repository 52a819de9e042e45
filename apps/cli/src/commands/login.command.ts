import { text } from 'node:stream/consumers';

import type { Fleet, Principal } from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { FerryClient } from '../support/client';
import { forgetToken, readSavedLogin, resolveCredentials, saveLogin } from '../support/config-file';
import { CliError, InputError, NotLoggedInError, UnreachableError } from '../support/errors';
import { ExitCode } from '../support/exit-codes';
import { fields, print, printJson } from '../support/format';

interface WhoAmI {
  url: string | null;
  urlFrom: string | null;
  token: 'valid' | 'refused' | 'missing' | 'unknown';
  tokenFrom: string | null;
  fleets: number | null;
  ready: boolean | null;
  readiness: string;
}

/** Registers `ferry login`, `ferry logout` and `ferry whoami`. */
export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description('check a token against a server and save both for the next commands')
    .option('--url <url>', 'server URL, e.g. http://127.0.0.1:8080 (default: FERRY_URL or the saved one)')
    .option('--token <token>', 'admin token; "-" reads it from stdin (keeps it out of shell history)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nSaved to $FERRY_CONFIG, else $XDG_CONFIG_HOME/ferry/config.json, else ~/.config/ferry/config.json\n' +
        '(mode 0600). FERRY_URL and FERRY_TOKEN override the saved values for any command.',
    )
    .action(
      action(async ({ env }, opts: { url?: string; token?: string; json?: boolean }) => {
        const saved = await readSavedLogin(env.configPath);
        const url = opts.url ?? env.url ?? saved?.url;
        if (!url) throw new InputError('no server URL: pass --url URL');
        let token = opts.token ?? env.token;
        if (token === '-') token = (await text(process.stdin)).trim();
        if (!token) throw new InputError('no token: pass --token TOKEN (or --token - to read it from stdin)');
        const client = new FerryClient(url, token);
        // whoami first: the server's audit log records it as the sign-in.
        await client.get<Principal>('/v1/auth/whoami');
        const fleets = await client.get<Fleet[]>('/v1/fleets');
        const normalized = client.base.href.replace(/\/$/, '');
        await saveLogin(env.configPath, { url: normalized, token });
        if (opts.json) printJson({ url: normalized, config: env.configPath, fleets: fleets.length });
        else print(`logged in to ${normalized} (${fleets.length} fleets); saved to ${env.configPath}`);
      }),
    );

  program
    .command('logout')
    .description('forget the saved token (the saved URL stays)')
    .action(
      action(async ({ env }) => {
        const forgotten = await forgetToken(env.configPath);
        print(forgotten ? `forgot the token saved in ${env.configPath}` : 'no saved token');
      }),
    );

  program
    .command('whoami')
    .description('show the server URL, whether the token works and whether the server is ready')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ env }, opts: { json?: boolean }) => {
        const found = await resolveCredentials(env);
        const info: WhoAmI = {
          url: found.url ?? null,
          urlFrom: found.urlFrom ?? null,
          token: found.token ? 'unknown' : 'missing',
          tokenFrom: found.tokenFrom ?? null,
          fleets: null,
          ready: null,
          readiness: 'unknown',
        };
        let failure: CliError | undefined;
        if (!found.url) {
          failure = new NotLoggedInError(
            'not logged in: run "ferry login --url URL --token TOKEN" or set FERRY_URL',
          );
        } else {
          const client = new FerryClient(found.url, found.token ?? null);
          try {
            const ready = await client.get<Record<string, string>>('/readyz');
            info.ready = true;
            info.readiness = Object.entries(ready)
              .filter(([k]) => k !== 'status')
              .map(([k, v]) => `${k} ${v}`)
              .join(', ');
          } catch (err) {
            if (!(err instanceof CliError)) throw err;
            info.readiness = err.message;
            if (err instanceof UnreachableError) {
              // 503 from /readyz: up but not ready; no answer at all: unreachable (ready stays null).
              if (err.answered) info.ready = false;
              failure = err;
            }
          }
          if (found.token && !(failure instanceof UnreachableError && !failure.answered)) {
            try {
              info.fleets = (await client.get<Fleet[]>('/v1/fleets')).length;
              info.token = 'valid';
            } catch (err) {
              if (!(err instanceof CliError)) throw err;
              if (err.exitCode === ExitCode.NotLoggedIn) info.token = 'refused';
              failure ??= err;
            }
          } else if (!found.token) {
            failure ??= new NotLoggedInError('no token: run "ferry login --token TOKEN" or set FERRY_TOKEN');
          }
        }
        if (opts.json) printJson(info);
        else {
          const from = (what: string | null): string => (what ? ` (from ${what})` : '');
          print(
            fields([
              ['server', `${info.url ?? 'none'}${from(info.urlFrom)}`],
              [
                'token',
                `${info.token}${from(info.tokenFrom)}${info.fleets !== null ? `, ${info.fleets} fleets` : ''}`,
              ],
              [
                'ready',
                info.ready === null
                  ? info.url
                    ? 'unreachable'
                    : 'unknown'
                  : info.ready
                    ? `yes (${info.readiness})`
                    : `no (${info.readiness})`,
              ],
            ]),
          );
        }
        if (failure) throw failure;
      }),
    );
}
