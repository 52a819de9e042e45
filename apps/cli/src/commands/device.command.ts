import type { Device, Fleet, Release, VolumePurge } from '@ferry/protocol';
import { Command } from 'commander';

import { action, collect, keyValue } from '../support/action';
import { devicePath, fleetPath } from '../support/api-paths';
import type { FerryClient, Query } from '../support/client';
import { confirm } from '../support/confirm';
import { CliError, InputError } from '../support/errors';
import { ExitCode } from '../support/exit-codes';
import { ago, bytes, fields, print, printJson, table, time } from '../support/format';
import { resolveRelease } from '../support/resolve';

const PAGE = 1000;

/** Every device matching the query, page by page. */
async function listDevices(client: FerryClient, path: string, query: Query): Promise<Device[]> {
  const all: Device[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await client.get<Device[]>(path, { ...query, limit: PAGE, offset });
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

const FULL_UUID = /^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * A device UUID as given, or the one device whose UUID starts with it (7+ characters, as balena's
 * short UUIDs), so operators can type what the listing shows first.
 */
export async function resolveUuid(client: FerryClient, given: string): Promise<string> {
  const text = given.toLowerCase();
  if (FULL_UUID.test(text) || text.length < 7 || !/^[0-9a-f-]+$/.test(text)) return given;
  const matches = (await client.get<Device[]>('/v1/devices', { search: text, limit: 10 })).filter((d) =>
    d.uuid.startsWith(text),
  );
  if (matches.length > 1)
    throw new InputError(`"${given}" is the start of ${matches.length} device UUIDs; give more of it`);
  return matches[0]?.uuid ?? given;
}

/** `--wait` seconds: a whole number up to a day. */
function waitSeconds(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 86_400)
    throw new InputError(`--wait takes whole seconds up to 86400, not "${value}"`);
  return Number(value);
}

function purgeText(purge: VolumePurge, waited: boolean): string {
  if (purge.state === 'purged') return `volume ${purge.volume} purged from device ${purge.uuid}`;
  if (purge.state === 'refused') return `volume ${purge.volume} not purged from device ${purge.uuid}`;
  return waited
    ? `purge of volume ${purge.volume} still pending: device ${purge.uuid} has not answered yet`
    : `purge of volume ${purge.volume} requested: device ${purge.uuid} removes it when it next hears from the server (--wait SECONDS to wait for it)`;
}

/** Fleet slugs and release versions, to show names instead of UUIDs. */
interface Names {
  fleet(id: string): string;
  release(id: string | null): string;
}

async function namesFor(client: FerryClient, devices: Device[]): Promise<Names> {
  const fleets = new Map((await client.get<Fleet[]>('/v1/fleets')).map((f) => [f.id, f.slug]));
  const versions = new Map<string, number>();
  for (const fleetId of new Set(devices.map((d) => d.fleetId))) {
    if (!devices.some((d) => d.fleetId === fleetId && (d.releaseId || d.targetReleaseId))) continue;
    for (const r of await client.get<Release[]>(`${fleetPath(fleetId)}/releases`)) {
      versions.set(r.id, r.version);
    }
  }
  return {
    fleet: (id) => fleets.get(id) ?? id,
    release: (id) => (id === null ? '-' : versions.has(id) ? `v${versions.get(id)}` : id.slice(0, 8)),
  };
}

/** `downloading 45%` while a download reports byte counts, else the status alone. */
function statusText(device: Device): string {
  const r = device.report;
  if (device.status === 'downloading' && r?.bytesDone != null && r.bytesTotal) {
    return `${device.status} ${Math.floor((100 * r.bytesDone) / r.bytesTotal)}%`;
  }
  return device.status;
}

function releaseText(device: Device, names: Names): string {
  const running = names.release(device.releaseId);
  if (device.targetReleaseId && device.targetReleaseId !== device.releaseId) {
    return `${running} → ${names.release(device.targetReleaseId)}`;
  }
  return running;
}

const tagsText = (tags: Record<string, string>): string =>
  Object.entries(tags)
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
    .join(',') || '-';

/** `v7 (runs v6)`: the configuration variables version it should run and the one it reports. */
function variablesText(device: Device): string {
  const { version, reportedVersion } = device.variables;
  if (reportedVersion === null) return `v${version} (not reported yet)`;
  return `v${version} (${reportedVersion === version ? 'up to date' : `runs v${reportedVersion}`})`;
}

function deviceText(device: Device, names: Names): string {
  const pairs: [string, string][] = [
    ['device', device.uuid],
    ['name', device.name],
    ['fleet', names.fleet(device.fleetId)],
    ['status', statusText(device)],
    ['online', device.online ? 'yes' : 'no'],
    ['last seen', device.lastSeenAt ? `${time(device.lastSeenAt)} (${ago(device.lastSeenAt)})` : 'never'],
    ['release', names.release(device.releaseId)],
    ['target', names.release(device.targetReleaseId)],
    ['type', device.deviceType ?? '-'],
    ['agent', device.agentVersion ?? '-'],
    ['tags', tagsText(device.tags)],
    ['variables', variablesText(device)],
    ['registered', time(device.createdAt)],
  ];
  const r = device.report;
  if (r) {
    const progress = r.bytesDone !== null ? `, ${bytes(r.bytesDone)} of ${bytes(r.bytesTotal)}` : '';
    pairs.push(['last report', `${time(r.at)} about ${names.release(r.releaseId)}${progress}`]);
    if (r.error) pairs.push(['error', r.error]);
  }
  return fields(pairs) + servicesText(device);
}

/** Per service of the device's app: state (exit code, health), restarts, image. */
function servicesText(device: Device): string {
  const services = device.services ?? [];
  if (services.length === 0) return '';
  return (
    '\n' +
    table(
      ['SERVICE', 'STATE', 'HEALTH', 'RESTARTS', 'IMAGE', 'CONTAINER'],
      services.map((s) => [
        s.name,
        s.state === 'exited' ? `exited (${s.exitCode ?? '?'})` : s.state,
        s.health ?? '-',
        s.restartCount,
        s.image.replace(/^sha256:/, '').slice(0, 12),
        s.containerId ?? '-',
      ]),
    )
  );
}

/** Registers `ferry devices` and `ferry device UUID | rm | tag`. */
export function registerDeviceCommands(program: Command): void {
  program
    .command('devices')
    .description('list devices, of one fleet or all')
    .option('-f, --fleet <fleet>', 'only this fleet (slug or id)')
    .option('--search <text>', 'name or UUID containing this')
    .option('--tag <key[=value]>', 'having this tag (repeat: all of them)', collect, [] as string[])
    .option('--json', 'print as JSON')
    .action(
      action(
        async ({ connect }, opts: { fleet?: string; search?: string; tag: string[]; json?: boolean }) => {
          const client = await connect();
          const wanted = opts.tag.map((t) => (t.includes('=') ? keyValue(t) : ([t, undefined] as const)));
          const path = opts.fleet ? `${fleetPath(opts.fleet)}/devices` : '/v1/devices';
          // The server filters by one tag; the others are checked here.
          const devices = (await listDevices(client, path, { search: opts.search, tag: opts.tag[0] })).filter(
            (d) => wanted.every(([k, v]) => k in d.tags && (v === undefined || d.tags[k] === v)),
          );
          if (opts.json) return printJson(devices);
          if (devices.length === 0) return print('no devices');
          const names = await namesFor(client, devices);
          print(
            table(
              ['UUID', 'NAME', 'FLEET', 'STATUS', 'ONLINE', 'RELEASE', 'LAST SEEN', 'TAGS'],
              devices.map((d) => [
                d.uuid,
                d.name,
                names.fleet(d.fleetId),
                statusText(d),
                d.online ? 'yes' : 'no',
                releaseText(d, names),
                ago(d.lastSeenAt),
                tagsText(d.tags),
              ]),
            ),
          );
        },
      ),
    );

  const device = program
    .command('device')
    .description('show a device, remove it, or tag it')
    .argument('[uuid]', 'device UUID to show (or its first 7+ characters)')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, uuid: string | undefined, opts: { json?: boolean }, command: Command) => {
        if (!uuid) return command.help({ error: true });
        const client = await connect();
        const found = await client.get<Device>(devicePath(await resolveUuid(client, uuid)));
        if (opts.json) return printJson(found);
        print(deviceText(found, await namesFor(client, [found])));
      }),
    );

  device
    .command('rm')
    .description('deprovision a device: its key stops working at once and its MQTT session is dropped')
    .argument('<uuid>', 'device UUID (or its first 7+ characters)')
    .option('-y, --yes', 'do not ask for confirmation (needed when stdin is not a terminal)')
    .action(
      action(async ({ connect }, uuid: string, opts: { yes?: boolean }) => {
        const client = await connect();
        const found = await client.get<Device>(devicePath(await resolveUuid(client, uuid)));
        await confirm(`remove device ${found.uuid} (${found.name})?`, opts.yes);
        await client.delete(devicePath(found.uuid));
        print(`removed device ${found.uuid} (${found.name})`);
      }),
    );

  device
    .command('target')
    .description(
      'set the release one device should run, outside any rollout; an older release than one it ran needs --rollback, or the device refuses it',
    )
    .argument('<uuid>', 'device UUID (or its first 7+ characters)')
    .argument('<release>', 'release: vN, its id, or the start of its id')
    .option(
      '--rollback',
      'the release is older than one the device ran, on purpose (the signed target says so)',
    )
    .option('--json', 'print the device as JSON')
    .action(
      action(
        async ({ connect }, given: string, ref: string, opts: { rollback?: boolean; json?: boolean }) => {
          const client = await connect();
          const found = await client.get<Device>(devicePath(await resolveUuid(client, given)));
          const releaseId = await resolveRelease(client, ref, found.fleetId);
          const updated = await client.put<Device>(`${devicePath(found.uuid)}/target`, {
            releaseId,
            ...(opts.rollback ? { rollback: true } : {}),
          });
          if (opts.json) return printJson(updated);
          print(
            `device ${updated.uuid} (${updated.name}) now targets release ${releaseId}` +
              (opts.rollback ? ' (marked as a rollback)' : ''),
          );
        },
      ),
    );

  device
    .command('purge-volume')
    .description(
      'remove an app volume from a device for good (its data is lost); refused while a release the device runs or is to run declares it',
    )
    .argument('<uuid>', 'device UUID (or its first 7+ characters)')
    .argument('<volume>', 'the volume as the compose file names it (the device holds it as <fleet>_<volume>)')
    .option('-y, --yes', 'do not ask for confirmation (needed when stdin is not a terminal)')
    .option('--wait <seconds>', 'wait up to this long for the device to carry it out', waitSeconds)
    .option('--json', 'print the purge request as JSON')
    .action(
      action(
        async (
          { connect },
          given: string,
          volume: string,
          opts: { yes?: boolean; wait?: number; json?: boolean },
        ) => {
          const client = await connect();
          const uuid = await resolveUuid(client, given);
          await confirm(`purge volume ${volume} from device ${uuid}? Its data is lost for good`, opts.yes);
          let purge = await client.post<VolumePurge>(
            `${devicePath(uuid)}/volumes/${encodeURIComponent(volume)}/purge`,
          );
          const deadline = Date.now() + (opts.wait ?? 0) * 1000;
          while (purge.state === 'pending' && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 1000));
            const listed = await client.get<VolumePurge[]>(`${devicePath(uuid)}/volume-purges`);
            purge = listed.find((p) => p.volume === volume) ?? purge;
          }
          if (opts.json) printJson(purge);
          else print(purgeText(purge, opts.wait !== undefined));
          if (purge.state === 'refused')
            throw new CliError(
              `device ${uuid} refused to purge volume ${volume}: ${purge.error}`,
              ExitCode.Refused,
            );
        },
      ),
    );

  device
    .command('tag')
    .description('set tags (key=value) and remove tags (--rm key) on a device')
    .argument('<uuid>', 'device UUID (or its first 7+ characters)')
    .argument('[tags...]', 'tags to set, as key=value')
    .option('--rm <key>', 'remove this tag (repeatable)', collect, [] as string[])
    .option('--json', 'print the device as JSON')
    .action(
      action(async ({ connect }, uuid: string, pairs: string[], opts: { rm: string[]; json?: boolean }) => {
        if (pairs.length === 0 && opts.rm.length === 0) {
          throw new InputError('nothing to do: give key=value tags to set and/or --rm key');
        }
        const tags: Record<string, string | null> = Object.fromEntries(pairs.map(keyValue));
        for (const key of opts.rm) tags[key] = null;
        const client = await connect();
        const updated = await client.post<Device>(`${devicePath(await resolveUuid(client, uuid))}/tags`, {
          tags,
        });
        if (opts.json) return printJson(updated);
        print(`device ${updated.uuid} tags: ${tagsText(updated.tags)}`);
      }),
    );
}
