import { text } from 'node:stream/consumers';

import type { Device, Fleet, Variable, VariableList } from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { devicePath, fleetPath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { InputError } from '../support/errors';
import { fields, print, printJson, table } from '../support/format';
import { resolveUuid } from './device.command';

interface ScopeOptions {
  device?: string;
  service?: string;
}

/** The API path of the variables of FLEET, or of `--device` (which must belong to FLEET). */
async function variablesPath(client: FerryClient, fleetRef: string, opts: ScopeOptions): Promise<string> {
  const fleet = await client.get<Fleet>(fleetPath(fleetRef));
  if (!opts.device) return `${fleetPath(fleet.slug)}/variables`;
  const device = await client.get<Device>(devicePath(await resolveUuid(client, opts.device)));
  if (device.fleetId !== fleet.id)
    throw new InputError(`device ${device.uuid} belongs to another fleet than ${fleet.slug}`);
  return `${devicePath(device.uuid)}/variables`;
}

/** A value on one line of a table: control characters escaped, a secret never shown. */
function shownValue(variable: Variable): string {
  if (variable.secret || variable.value === null) return '<secret>';
  let out = '';
  for (const c of variable.value) {
    const code = c.charCodeAt(0);
    if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\\') out += '\\\\';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return out;
}

function listText(list: VariableList): string {
  const head: [string, string][] = [];
  if (list.uuid) {
    const reported = list.reportedVersion;
    const state =
      reported === null ? 'not reported yet' : reported === list.version ? 'up to date' : `runs v${reported}`;
    head.push(['device', list.uuid], ['variables', `v${list.version} (${state})`]);
  } else head.push(['variables', `revision ${list.version}`]);
  if (list.service) head.push(['service', `${list.service} (effective values)`]);
  const body =
    list.variables.length === 0
      ? 'no variables\n'
      : table(
          ['NAME', 'VALUE', 'LEVEL', 'SERVICE'],
          list.variables.map((v) => [v.name, shownValue(v), v.level, v.service ?? '*']),
        );
  return `${fields(head)}\n${body}`;
}

/** Registers `ferry env FLEET`, `ferry env set` and `ferry env rm`. */
export function registerEnvCommands(program: Command): void {
  const env = program
    .command('env')
    .description(
      'configuration variables: show the effective values and the level each comes from (fleet, ' +
        'fleet+service, device, device+service; the most specific wins), set or remove them',
    )
    .argument('[fleet]', 'fleet slug or id')
    .option('--device <uuid>', "the device's variables (its own and the fleet's it inherits)")
    .option('--service <name>', 'only what wins for this service')
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          fleet: string | undefined,
          opts: ScopeOptions & { json?: boolean },
          command: Command,
        ) => {
          if (!fleet) return command.help({ error: true });
          const client = await connect();
          const list = await client.get<VariableList>(await variablesPath(client, fleet, opts), {
            service: opts.service,
          });
          if (opts.json) return printJson(list);
          print(listText(list));
        },
      ),
    );

  env
    .command('set')
    .description('set a variable (NAME=VALUE, or NAME alone to read the value from stdin, e.g. a secret)')
    .argument('<fleet>', 'fleet slug or id')
    .argument('<assignment>', 'NAME=VALUE, or NAME to read the value from stdin')
    .option('--device <uuid>', 'on this device (device level)')
    .option('--service <name>', 'for this service only')
    .option('--secret', 'never show the value back (only devices receive it)')
    .option('--no-secret', 'make a secret variable a plain one again')
    .option('--json', 'print the variable as JSON')
    .action(
      action(
        async (
          { connect },
          fleet: string,
          assignment: string,
          opts: ScopeOptions & { secret?: boolean; json?: boolean },
          command: Command,
        ) => {
          const at = assignment.indexOf('=');
          const name = at < 0 ? assignment : assignment.slice(0, at);
          let value: string;
          if (at >= 0) value = assignment.slice(at + 1);
          else {
            if (process.stdin.isTTY)
              throw new InputError(`no value: give ${name}=VALUE, or pipe the value in`);
            value = (await text(process.stdin)).replace(/\r?\n$/, '');
          }
          // Commander sets `secret` only when --secret or --no-secret is given.
          const secret = command.getOptionValueSource('secret') === 'cli' ? opts.secret : undefined;
          const client = await connect();
          const path = await variablesPath(client, fleet, opts);
          const variable = await client.post<Variable>(path, {
            name,
            value,
            ...(opts.service ? { service: opts.service } : {}),
            ...(secret !== undefined ? { secret } : {}),
          });
          if (opts.json) return printJson(variable);
          const where = `${opts.device ? `device ${opts.device}` : `fleet ${fleet}`}${opts.service ? `, service ${opts.service}` : ''}`;
          print(`set ${variable.name} (${variable.level}${variable.secret ? ', secret' : ''}) on ${where}`);
        },
      ),
    );

  env
    .command('rm')
    .description('remove a variable from one level (the next less specific one shows through again)')
    .argument('<fleet>', 'fleet slug or id')
    .argument('<name>', 'variable name')
    .option('--device <uuid>', 'from this device (device level)')
    .option('--service <name>', 'the variable set for this service only')
    .action(
      action(async ({ connect }, fleet: string, name: string, opts: ScopeOptions) => {
        const client = await connect();
        const path = `${await variablesPath(client, fleet, opts)}/${encodeURIComponent(name)}`;
        await client.request<void>('DELETE', path, { query: { service: opts.service } });
        print(
          `removed ${name} from ${opts.device ? `device ${opts.device}` : `fleet ${fleet}`}${opts.service ? `, service ${opts.service}` : ''}`,
        );
      }),
    );
}
