import {
  downloadRateText,
  type Device,
  type EffectiveUpdatePolicy,
  type Fleet,
  type UpdatePolicyEntry,
} from '@ferry/protocol';
import { Command } from 'commander';

import { action, optionParser } from '../support/action';
import { devicePath, fleetPath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { InputError } from '../support/errors';
import { fields, print, printJson, table, time } from '../support/format';
import { parseRate } from '../support/parse';
import { resolveUuid } from './device.command';

interface LevelOptions {
  tag?: string;
  device?: string;
}

/** A rate cap as the table shows it (`-`: not set at this level). */
export function rateText(rate: number | null): string {
  return rate === null ? '-' : downloadRateText(rate);
}

const windowsText = (windows: string[] | null): string =>
  windows === null ? '-' : windows.length === 0 ? 'any time' : windows.join('; ');

function scopeText(entry: UpdatePolicyEntry): string {
  if (entry.scope.kind === 'tag') return `tag ${entry.scope.tag}=${entry.scope.value}`;
  if (entry.scope.kind === 'device') return `device ${entry.scope.uuid}`;
  return 'fleet';
}

/** The level named by `--tag` or `--device` (resolved to a full UUID of FLEET), or the fleet's. */
async function levelOf(client: FerryClient, fleetRef: string, opts: LevelOptions): Promise<LevelOptions> {
  if (opts.tag && opts.device) throw new InputError('give --tag or --device, not both');
  if (opts.tag) {
    if (!/^[^=]+=/.test(opts.tag)) throw new InputError('--tag: expected name=value');
    return { tag: opts.tag };
  }
  if (!opts.device) return {};
  const fleet = await client.get<Fleet>(fleetPath(fleetRef));
  const device = await client.get<Device>(devicePath(await resolveUuid(client, opts.device)));
  if (device.fleetId !== fleet.id)
    throw new InputError(`device ${device.uuid} belongs to another fleet than ${fleet.slug}`);
  return { device: device.uuid };
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Registers `ferry policy FLEET`, `ferry policy set`, `ferry policy clear` and `ferry policy device`. */
export function registerUpdatePolicyCommands(program: Command): void {
  const policy = program
    .command('policy')
    .description(
      'update policies: maintenance windows (installs), download windows and download rate caps per ' +
        'fleet, tag value or device (the most specific wins; docs/rollouts.md)',
    )
    .argument('[fleet]', 'fleet slug or id')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, fleet: string | undefined, opts: { json?: boolean }, command: Command) => {
        if (!fleet) return command.help({ error: true });
        const list = await (
          await connect()
        ).get<{ fleetId: string; entries: UpdatePolicyEntry[] }>(`${fleetPath(fleet)}/update-policy`);
        if (opts.json) return printJson(list);
        if (list.entries.length === 0)
          return print(
            `fleet ${fleet} has no update policy: devices download and install at any time, at full speed\n` +
              `set one: ferry policy set ${fleet} --maintenance-window "Mon-Fri 02:00-04:00 Europe/Berlin"`,
          );
        print(
          table(
            ['LEVEL', 'MAINTENANCE WINDOWS', 'DOWNLOAD WINDOWS', 'RATE CAP', 'UPDATED'],
            list.entries.map((e) => [
              scopeText(e),
              windowsText(e.maintenanceWindows),
              windowsText(e.downloadWindows),
              e.downloadRate === null ? '-' : rateText(e.downloadRate),
              time(e.updatedAt),
            ]),
          ),
        );
      }),
    );

  policy
    .command('set')
    .description(
      'set what the fleet, one tag value or one device sets, replacing it (a part left out is not set ' +
        'at that level; the broader level applies). Windows are weekly: "Mon-Fri 02:00-04:00 Europe/Berlin"',
    )
    .argument('<fleet>', 'fleet slug or id')
    .option('--tag <name=value>', 'for devices with this tag value')
    .option('--device <uuid>', 'for this device (a unique UUID prefix will do)')
    .option(
      '--maintenance-window <window>',
      'install only inside this window (repeat for more; "any" for any time)',
      collect,
    )
    .option(
      '--download-window <window>',
      'download only inside this window (repeat for more; "any" for any time)',
      collect,
    )
    .option(
      '--rate <rate>',
      'download rate cap: 500KB/s, 2MB/s, 8Mbit/s; 0 for no cap',
      optionParser(parseRate),
    )
    .option('--json', 'print the fleet policy as JSON')
    .action(
      action(
        async (
          { connect },
          fleet: string,
          opts: LevelOptions & {
            maintenanceWindow?: string[];
            downloadWindow?: string[];
            rate?: number;
            json?: boolean;
          },
        ) => {
          const windows = (list: string[] | undefined): string[] | undefined =>
            list === undefined ? undefined : list.filter((w) => w.toLowerCase() !== 'any');
          const body = {
            ...(await levelOf(await connect(), fleet, opts)),
            maintenanceWindows: windows(opts.maintenanceWindow),
            downloadWindows: windows(opts.downloadWindow),
            downloadRate: opts.rate,
          };
          if (
            body.maintenanceWindows === undefined &&
            body.downloadWindows === undefined &&
            body.downloadRate === undefined
          )
            throw new InputError(
              'nothing to set: give --maintenance-window, --download-window or --rate (ferry policy clear removes a level)',
            );
          const list = await (
            await connect()
          ).put<{ entries: UpdatePolicyEntry[] }>(`${fleetPath(fleet)}/update-policy`, body);
          if (opts.json) return printJson(list);
          const level = body.tag ? `tag ${body.tag}` : body.device ? `device ${body.device}` : 'the fleet';
          print(`update policy of ${level} in ${fleet} set (ferry policy ${fleet} lists them)`);
        },
      ),
    );

  policy
    .command('clear')
    .description('remove what the fleet, one tag value or one device sets')
    .argument('<fleet>', 'fleet slug or id')
    .option('--tag <name=value>', 'the entry of this tag value')
    .option('--device <uuid>', "this device's own entry")
    .action(
      action(async ({ connect }, fleet: string, opts: LevelOptions) => {
        const client = await connect();
        const level = await levelOf(client, fleet, opts);
        const query = new URLSearchParams(level as Record<string, string>).toString();
        await client.delete(`${fleetPath(fleet)}/update-policy${query ? `?${query}` : ''}`);
        print(
          `update policy of ${level.tag ? `tag ${level.tag}` : level.device ? `device ${level.device}` : 'the fleet'} in ${fleet} removed`,
        );
      }),
    );

  policy
    .command('device')
    .description('what applies to one device, and the level each part comes from')
    .argument('<device>', 'device UUID or a unique prefix')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, given: string, opts: { json?: boolean }) => {
        const client = await connect();
        const effective = await client.get<EffectiveUpdatePolicy & { uuid: string }>(
          `${devicePath(await resolveUuid(client, given))}/update-policy`,
        );
        if (opts.json) return printJson(effective);
        const from = (source: string | null): string => (source ? `  (${source})` : '  (default)');
        print(
          fields([
            ['device', effective.uuid],
            [
              'installs',
              `${windowsText(effective.maintenanceWindows)}${from(effective.sources.maintenanceWindows)}`,
            ],
            [
              'downloads',
              `${windowsText(effective.downloadWindows)}${from(effective.sources.downloadWindows)}`,
            ],
            ['rate cap', `${rateText(effective.downloadRate)}${from(effective.sources.downloadRate)}`],
          ]),
        );
      }),
    );
}
