import { OPERATOR_ROLES, type ApiKey, type BootstrapTokenState, type CreatedApiKey } from '@ferry/protocol';
import { Command, Option } from 'commander';

import { action } from '../support/action';
import { InputError } from '../support/errors';
import { print, printJson, table, time } from '../support/format';
import { parseDuration } from '../support/parse';
import { registerReleaseKeyCommands } from './release-key.command';

/** `--expires 30d` (from now) or an ISO-8601 time → the ISO time the key stops working. */
export function expiryOf(text: string, now = Date.now()): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const at = Date.parse(text);
    if (Number.isNaN(at)) throw new InputError(`--expires: not a time: ${text}`);
    return new Date(at).toISOString();
  }
  const seconds = parseDuration(text);
  if (!(seconds > 0)) throw new InputError('--expires: give a duration such as 30d or an ISO-8601 time');
  return new Date(now + seconds * 1000).toISOString();
}

function scopeText(key: ApiKey): string {
  return key.fleetIds === null ? 'all fleets' : key.fleetIds.join(',');
}

function stateText(key: ApiKey): string {
  if (key.revokedAt) return `revoked ${time(key.revokedAt)}`;
  if (key.expiresAt && Date.parse(key.expiresAt) <= Date.now()) return `expired ${time(key.expiresAt)}`;
  return key.expiresAt ? `until ${time(key.expiresAt)}` : 'active';
}

/** Registers `ferry keys [list] | create | revoke | disable-bootstrap | generate-release-key`. */
export function registerKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('operator API keys (roles, fleet scope, expiry) and release signing keys')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, opts: { json?: boolean }) => {
        const listed = await (await connect()).get<ApiKey[]>('/v1/api-keys');
        if (opts.json) return printJson(listed);
        if (listed.length === 0)
          return print(
            'no API keys yet: ferry keys create NAME --role admin|deployer|viewer|device-provisioner',
          );
        print(
          table(
            ['NAME', 'ROLE', 'FLEETS', 'PREFIX', 'STATE', 'LAST USED', 'CREATED BY'],
            listed.map((k) => [
              k.name,
              k.role,
              scopeText(k),
              `${k.prefix}…`,
              stateText(k),
              k.lastUsedAt ? time(k.lastUsedAt) : '-',
              k.createdBy,
            ]),
          ),
        );
      }),
    );

  keys
    .command('create')
    .description('create an API key (shown once; the server keeps only its hash)')
    .argument('<name>', 'a name for the key, e.g. ci-deployer (it appears in the audit log)')
    .addOption(
      new Option('--role <role>', 'what the key may do').choices(OPERATOR_ROLES).makeOptionMandatory(),
    )
    .option('--fleet <fleet...>', 'limit the key to these fleets (slug or id); default every fleet')
    .option('--expires <when>', 'when the key stops working: a duration from now (30d, 12h) or an ISO time')
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          name: string,
          opts: { role: string; fleet?: string[]; expires?: string; json?: boolean },
        ) => {
          const created = await (
            await connect()
          ).post<CreatedApiKey>('/v1/api-keys', {
            name,
            role: opts.role,
            ...(opts.fleet ? { fleets: opts.fleet } : {}),
            ...(opts.expires ? { expiresAt: expiryOf(opts.expires) } : {}),
          });
          if (opts.json) return printJson(created);
          print(
            `API key ${created.name} (${created.role}, ${scopeText(created)}${created.expiresAt ? `, until ${time(created.expiresAt)}` : ''}); shown only now, the server keeps a hash:\n\n` +
              `  ${created.key}\n\n` +
              `use it with: ferry login --token -   (paste it on stdin)\n` +
              `revoke it with: ferry keys revoke ${created.name}`,
          );
        },
      ),
    );

  keys
    .command('revoke')
    .description('revoke an API key at once (by name or id)')
    .argument('<key>', 'key name or id')
    .action(
      action(async ({ connect }, key: string) => {
        await (await connect()).delete(`/v1/api-keys/${encodeURIComponent(key)}`);
        print(`revoked API key ${key}`);
      }),
    );

  keys
    .command('disable-bootstrap')
    .description('turn the bootstrap admin token off for good (needs a working admin API key first)')
    .action(
      action(async ({ connect }) => {
        const client = await connect();
        await client.delete('/v1/auth/bootstrap-token');
        const state = await client.get<BootstrapTokenState>('/v1/auth/bootstrap-token');
        print(
          state.enabled
            ? 'the bootstrap token is still enabled'
            : 'the bootstrap admin token is now disabled',
        );
      }),
    );

  registerReleaseKeyCommands(keys);
}
