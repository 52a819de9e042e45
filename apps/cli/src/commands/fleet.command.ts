import { readFile } from 'node:fs/promises';

import {
  ARCHITECTURES,
  releaseSigningMode,
  type CreatedProvisioningKey,
  type Fleet,
  type ProvisioningKey,
} from '@ferry/protocol';
import { Command, Option } from 'commander';

import { action } from '../support/action';
import { fleetPath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { InputError } from '../support/errors';
import { fields, print, printJson, table, time } from '../support/format';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The key id to revoke: a full id as given, or a unique start of an id or of the key itself (the
 * `fp_…` prefix `ferry fleet keys` shows), so operators need not copy whole UUIDs.
 */
async function resolveKeyId(client: FerryClient, fleet: string, given: string): Promise<string> {
  if (UUID.test(given)) return given;
  const keys = await client.get<ProvisioningKey[]>(`${fleetPath(fleet)}/provisioning-keys`);
  const matches = keys.filter((k) =>
    given.startsWith('fp_')
      ? given.length >= 6 && (given.startsWith(k.prefix) || k.prefix.startsWith(given))
      : given.length >= 4 && k.id.startsWith(given),
  );
  if (matches.length === 1 && matches[0]) return matches[0].id;
  if (matches.length === 0) return given; // let the server say it does not exist
  throw new InputError(`"${given}" matches ${matches.length} keys of ${fleet}; give more of the id`);
}

const signingMode = (fleet: Fleet): string => releaseSigningMode(fleet.releaseTrust);

function fleetText(fleet: Fleet): string {
  return fields([
    ['fleet', fleet.slug],
    ['name', fleet.name],
    ['arch', fleet.arch],
    ['signing', signingMode(fleet)],
    ['id', fleet.id],
    ['created', time(fleet.createdAt)],
  ]);
}

/** Registers `ferry fleets` and `ferry fleet [FLEET] | create | key | keys`. */
export function registerFleetCommands(program: Command): void {
  program
    .command('fleets')
    .description('list fleets')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, opts: { json?: boolean }) => {
        const fleets = await (await connect()).get<Fleet[]>('/v1/fleets');
        if (opts.json) return printJson(fleets);
        if (fleets.length === 0) return print('no fleets yet: ferry fleet create NAME --arch amd64');
        print(
          table(
            ['FLEET', 'NAME', 'ARCH', 'SIGNING', 'ID', 'CREATED'],
            fleets.map((f) => [f.slug, f.name, f.arch, signingMode(f), f.id, time(f.createdAt)]),
          ),
        );
      }),
    );

  const fleet = program
    .command('fleet')
    .description('show a fleet, or create one and manage its provisioning keys')
    .argument('[fleet]', 'fleet slug or id to show')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, name: string | undefined, opts: { json?: boolean }, command: Command) => {
        if (!name) return command.help({ error: true });
        const found = await (await connect()).get<Fleet>(fleetPath(name));
        if (opts.json) printJson(found);
        else print(fleetText(found));
      }),
    );

  fleet
    .command('create')
    .description('create a fleet; its slug is made from the name unless --slug is given')
    .argument('<name>', 'fleet name, e.g. "Pumps"')
    .addOption(
      new Option('--arch <arch>', 'CPU architecture of its devices')
        .choices(ARCHITECTURES)
        .makeOptionMandatory(),
    )
    .option('--slug <slug>', 'the short name used in commands and URLs')
    .option(
      '--release-key <public-key-file...>',
      'pin release public keys (ferry keys generate-release-key): releases then need their signatures',
    )
    .option('--threshold <n>', 'how many of the release keys must sign each release (default 1)')
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          name: string,
          opts: { arch: string; slug?: string; releaseKey?: string[]; threshold?: string; json?: boolean },
        ) => {
          const releaseKeys = opts.releaseKey
            ? await Promise.all(opts.releaseKey.map((file) => readFile(file, 'utf8')))
            : undefined;
          const created = await (
            await connect()
          ).post<Fleet>('/v1/fleets', {
            name,
            arch: opts.arch,
            ...(opts.slug ? { slug: opts.slug } : {}),
            ...(releaseKeys ? { releaseKeys } : {}),
            ...(opts.threshold ? { releaseThreshold: Number(opts.threshold) } : {}),
          });
          if (opts.json) return printJson(created);
          print(`created fleet ${created.slug} (${created.arch}, id ${created.id})`);
          print(`next: ferry fleet key ${created.slug}   # a provisioning key for its devices`);
        },
      ),
    );

  const key = fleet
    .command('key')
    .description('create a provisioning key for a fleet (shown once), or revoke one')
    .argument('<fleet>', 'fleet slug or id')
    .option('--name <name>', 'a label to tell keys apart')
    .option('-q, --quiet', 'print only the key (KEY=$(ferry fleet key FLEET -q))')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nThe server keeps only a hash of each key, so every call makes a new one; revoke those no longer used.',
    )
    .action(
      action(async ({ connect }, name: string, opts: { name?: string; quiet?: boolean; json?: boolean }) => {
        const client = await connect();
        const created = await client.post<CreatedProvisioningKey>(
          `${fleetPath(name)}/provisioning-keys`,
          opts.name ? { name: opts.name } : {},
        );
        const url = client.base.href.replace(/\/$/, '');
        const command = `FERRY_API_URL=${url} FERRY_PROVISIONING_KEY=${created.key} node ferry-agent.js`;
        if (opts.json) return printJson({ ...created, fleet: name, deviceCommand: command });
        if (opts.quiet) return print(created.key);
        print(
          `provisioning key ${created.id} for fleet ${name} (shown only now; the server keeps a hash):\n\n` +
            `  ${created.key}\n\n` +
            `start a device with it:\n\n  ${command}\n\n` +
            `revoke it with: ferry fleet key revoke ${name} ${created.id}`,
        );
        if (/^(localhost|127\.|\[::1\])/.test(client.base.host)) {
          print(
            `\nnote: ${url} is this machine; give devices an address they can reach (the server's PUBLIC_URL).`,
          );
        }
      }),
    );

  key
    .command('revoke')
    .description(
      'revoke a provisioning key: devices can no longer register with it (registered ones keep working)',
    )
    .argument('<fleet>', 'fleet slug or id')
    .argument('<key-id>', 'key id, or a unique start of it or of the key (as ferry fleet keys shows)')
    .action(
      action(async ({ connect }, name: string, given: string) => {
        const client = await connect();
        const id = await resolveKeyId(client, name, given);
        await client.delete(`${fleetPath(name)}/provisioning-keys/${encodeURIComponent(id)}`);
        print(`revoked provisioning key ${id} of fleet ${name}`);
      }),
    );

  fleet
    .command('keys')
    .description("list a fleet's provisioning keys (their prefixes; the keys themselves are not kept)")
    .argument('<fleet>', 'fleet slug or id')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, name: string, opts: { json?: boolean }) => {
        const keys = await (await connect()).get<ProvisioningKey[]>(`${fleetPath(name)}/provisioning-keys`);
        if (opts.json) return printJson(keys);
        if (keys.length === 0)
          return print(`fleet ${name} has no provisioning keys: ferry fleet key ${name}`);
        print(
          table(
            ['ID', 'PREFIX', 'NAME', 'CREATED', 'REVOKED'],
            keys.map((k) => [
              k.id,
              `${k.prefix}…`,
              k.name ?? '-',
              time(k.createdAt),
              k.revokedAt ? time(k.revokedAt) : '-',
            ]),
          ),
        );
      }),
    );
}
