import { open, readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import { signRelease, type DeltaRecord, type Fleet, type Release } from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { fleetPath, fleetSlug, releasePath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { InputError } from '../support/errors';
import {
  bytes,
  fields,
  plural,
  percent,
  print,
  printJson,
  shortDigest,
  table,
  time,
} from '../support/format';
import { positiveInteger } from '../support/parse';
import { byteProgress } from '../support/progress';
import { openBundle, releaseDirectory } from './release-bundle';
import { checkManifestMatchesPush, localRelease } from './pushed-images';
import { resolveRelease } from '../support/resolve';
import { downloadsByBase, fullDownloadBytes } from './deltas-by-base';

/** What the server answers to a push: the release, which layers were new, and the archive format. */
interface PushedRelease extends Release {
  newLayers: string[];
  format: string;
}

const FILE_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
};

function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return (code && FILE_PROBLEMS[code]) ?? (err as Error).message;
}

/** The archive to stream: a file opened now (so a missing or unreadable one fails before any upload) or stdin. */
async function openArchive(archive: string): Promise<{ stream: Readable; size?: number }> {
  if (archive === '-') {
    if (process.stdin.isTTY) {
      throw new InputError(
        'stdin is a terminal; pipe an archive in, e.g. docker save app:2 | ferry push FLEET -',
      );
    }
    return { stream: process.stdin };
  }
  let handle;
  try {
    handle = await open(archive, 'r');
  } catch (err) {
    throw new InputError(`cannot read ${archive}: ${fileProblem(err)}`);
  }
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw new InputError(`${archive} is not a file (expected a docker save or OCI archive)`);
  }
  return { stream: handle.createReadStream(), size: info.size };
}

/** One row per layer of each service, marking the layers this push brought. */
function layerRows(release: Release, fresh?: Set<string>): (string | number)[][] {
  return release.services.flatMap((service) =>
    service.layers.map((layer, i) => [
      i === 0 ? service.name : '',
      i === 0 ? (service.image ?? '-') : '',
      shortDigest(layer.diffId),
      bytes(layer.size),
      bytes(layer.gzipSize),
      ...(fresh ? [fresh.has(layer.diffId) ? 'new' : 'stored'] : []),
    ]),
  );
}

function uniqueLayers(release: Release): Map<string, { size: number; gzipSize: number }> {
  return new Map(release.services.flatMap((s) => s.layers.map((l) => [l.diffId, l] as const)));
}

function releaseText(release: Release, fleet: string): string {
  const layers = [...uniqueLayers(release).values()];
  const gzip = layers.reduce((sum, l) => sum + l.gzipSize, 0);
  return (
    fields([
      ['release', release.id],
      ['fleet', fleet],
      ['version', release.version],
      ['note', release.note ?? '-'],
      ['created', time(release.createdAt)],
      ['services', release.services.map((s) => s.name).join(', ')],
      ['layers', `${layers.length}, ${bytes(release.totalSize)} (gzip ${bytes(gzip)})`],
    ]) +
    '\n' +
    table(['SERVICE', 'IMAGE', 'LAYER', 'SIZE', 'GZIP'], layerRows(release))
  );
}

/** Every delta whose target is in the release, one line each (the detail under the per-base table). */
function deltasText(deltas: DeltaRecord[]): string {
  if (deltas.length === 0) return 'no deltas\n';
  const withErrors = deltas.some((d) => d.error);
  const rows = deltas.map((d) => [
    `${d.bases.map(shortDigest).join('+')} → ${shortDigest(d.target)}`,
    d.state,
    d.state === 'full' ? 'not worth it' : bytes(d.size),
    bytes(d.targetGzipSize),
    percent(d.savings),
    ...(withErrors ? [d.error ?? ''] : []),
  ]);
  const byState: Record<string, number> = {};
  for (const d of deltas) byState[d.state] = (byState[d.state] ?? 0) + 1;
  const states = Object.entries(byState)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  return (
    table(
      ['BASES → TARGET', 'STATE', 'DELTA', 'FULL (GZIP)', 'SAVINGS', ...(withErrors ? ['ERROR'] : [])],
      rows,
    ) + `${plural(deltas.length, 'delta')}: ${states}\n`
  );
}

/** One line per older release: what a device on it downloads now, against whole layers. */
function byBaseText(target: Release, older: Release[], deltas: DeltaRecord[]): string {
  const rows = downloadsByBase(target, older, deltas).map((r) => [
    `v${r.base.version}`,
    `${r.layersNeeded}`,
    r.layersNeeded === 0
      ? '-'
      : `${r.deltasReady}/${r.layersNeeded} ready${r.deltasPending ? `, ${r.deltasPending} building` : ''}`,
    bytes(r.downloadBytes),
    bytes(r.fullBytes),
    percent(r.fullBytes > 0 ? 1 - r.downloadBytes / r.fullBytes : null),
  ]);
  const fresh = `a new device (no release) downloads ${bytes(fullDownloadBytes(target))}: every layer, gzip'd\n`;
  if (rows.length === 0) return `v${target.version} is the fleet's first release; ${fresh}`;
  return (
    `what a device on each release downloads to reach v${target.version}:\n` +
    table(['FROM', 'LAYERS NEEDED', 'DELTAS', 'DOWNLOAD', 'FULL LAYERS', 'SAVED'], rows) +
    fresh
  );
}

/** The fleet given as the argument or as -f/--fleet; one of the two is needed. */
function fleetOf(positional: string | undefined, option: string | undefined, usage: string): string {
  const fleet = positional ?? option;
  if (!fleet) throw new InputError(`name the fleet: ${usage}`);
  return fleet;
}

/**
 * Signs a pushed release's manifest with the owner's release keys (read here, never sent) and sends
 * the signatures. The manifest is checked first to name this fleet and this release, and to hold
 * exactly the services, images, layers and runtime configuration of the push (archives and compose file
 * read again here), so the signature covers what was sent whatever the server answered.
 */
async function signPushed(
  client: FerryClient,
  fleet: Fleet,
  release: Release,
  keyFiles: string[],
  pushed: { archives: string[]; compose: string | null },
): Promise<Release> {
  if (release.manifest.fleetId !== fleet.id || release.manifest.releaseId !== release.id)
    throw new InputError(`the server's manifest names another fleet or release: not signing it`);
  checkManifestMatchesPush(release.manifest, await localRelease(pushed.archives, pushed.compose), fleet.slug);
  const signatures = await Promise.all(
    keyFiles.map(async (file) => signRelease(release.manifest, await readFile(file, 'utf8'))),
  );
  return client.post<Release>(`${releasePath(release.id)}/signatures`, { signatures });
}

/** Registers `ferry push`, `ferry releases`, `ferry release` and `ferry deltas`. */
export function registerReleaseCommands(program: Command): void {
  program
    .command('push')
    .description(
      'push a release: a docker save or OCI image archive (file or stdin -), with --compose FILE, or a DIR holding docker-compose.yml and archives',
    )
    .argument('<fleet>', 'fleet slug or id')
    .argument(
      '<archive>',
      'archive file, - for stdin (docker save app:2 | ferry push FLEET -), or a directory with a compose file and archives',
    )
    .option('--compose <file>', 'the compose file giving the services their configuration (docs/compose.md)')
    .option('--version <n>', 'release version (default: the next one)', positiveInteger)
    .option('--note <text>', 'a note shown with the release')
    .option(
      '--sign <key-file...>',
      'sign the release with these release private keys (fleets with pinned release keys need the threshold)',
    )
    .option('--json', 'print the release and its deltas as JSON')
    .addHelpText(
      'after',
      '\nThe archive is streamed, never read whole into memory. A progress bar shows on a terminal\n(bytes, rate and ETA; bytes and rate for stdin).',
    )
    .action(
      action(
        async (
          { connect },
          fleet: string,
          archive: string,
          opts: { compose?: string; version?: number; note?: string; sign?: string[]; json?: boolean },
        ) => {
          const client = await connect();
          // Fail on an unknown fleet or a refused token before sending gigabytes.
          const target = await client.get<Fleet>(fleetPath(fleet));
          const isDir = archive !== '-' && (await stat(archive).catch(() => null))?.isDirectory() === true;
          if (isDir && opts.compose)
            throw new InputError(`${archive} is a directory: its own compose file is used, drop --compose`);
          if (archive === '-' && opts.sign)
            throw new InputError(
              '--sign needs the archive as a file: its layers are read again and checked against the manifest before signing',
            );
          if (archive === '-' && opts.compose)
            throw new InputError(
              '--compose needs the archive as a file (its size goes into the bundle), not stdin',
            );
          const bundle = isDir
            ? await releaseDirectory(archive)
            : opts.compose
              ? { compose: opts.compose, archives: [archive] }
              : null;
          const { stream, size } = bundle ? await openBundle(bundle) : await openArchive(archive);
          const progress = byteProgress(`pushing to ${target.slug}`, size, { json: opts.json });
          let release: PushedRelease;
          try {
            release = await client.upload<PushedRelease>(
              `${fleetPath(target.slug)}/releases`,
              { version: opts.version, note: opts.note },
              stream,
              {
                contentType: bundle ? 'application/vnd.ferry.release+tar' : 'application/x-tar',
                size,
                onProgress: (done) => progress.update(done),
              },
            );
          } finally {
            progress.stop();
            stream.destroy();
          }
          if (opts.sign) {
            const signed = await signPushed(
              client,
              target,
              release,
              opts.sign,
              bundle ?? { archives: [archive], compose: null },
            );
            release = { ...release, ownerSignatures: signed.ownerSignatures };
          } else if (target.releaseTrust)
            process.stderr.write(
              `note: fleet ${target.slug} pins release keys: v${release.version} needs the owners' signatures before a rollout (push with --sign KEY, or POST /v1/releases/${release.id}/signatures)\n`,
            );
          const deltas = await client.get<DeltaRecord[]>(`${releasePath(release.id)}/deltas`);
          if (opts.json) return printJson({ ...release, deltas });
          const fresh = new Set(release.newLayers);
          const layers = [...uniqueLayers(release).entries()];
          const newBytes = layers.filter(([d]) => fresh.has(d)).reduce((sum, [, l]) => sum + l.size, 0);
          print(
            `pushed release v${release.version} to fleet ${target.slug} (id ${release.id})\n` +
              `${plural(release.services.length, 'service')} (${release.services.map((s) => s.name).join(', ')}), ` +
              `${plural(layers.length, 'layer')}, ${bytes(release.totalSize)}; ${fresh.size} new (${bytes(newBytes)}), ` +
              `${layers.length - fresh.size} already stored; ${release.format}\n`,
          );
          print(table(['SERVICE', 'IMAGE', 'LAYER', 'SIZE', 'GZIP', ''], layerRows(release, fresh)));
          print(
            deltas.length === 0
              ? 'deltas: none queued yet (no device of the fleet runs an older release)'
              : `deltas queued: ${deltas.length} (ferry deltas ${target.slug} v${release.version})\n${deltasText(deltas)}`,
          );
        },
      ),
    );

  program
    .command('releases')
    .description("list a fleet's releases, newest first")
    .argument('[fleet]', 'fleet slug or id')
    .option('-f, --fleet <fleet>', 'the fleet, as an option')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, given: string | undefined, opts: { fleet?: string; json?: boolean }) => {
        const fleet = fleetOf(given, opts.fleet, 'ferry releases FLEET');
        const releases = await (await connect()).get<Release[]>(`${fleetPath(fleet)}/releases`);
        if (opts.json) return printJson(releases);
        if (releases.length === 0)
          return print(`fleet ${fleet} has no releases: ferry push ${fleet} ARCHIVE`);
        const sorted = [...releases].sort((a, b) => b.version - a.version);
        print(
          table(
            ['VERSION', 'ID', 'CREATED', 'SERVICES', 'LAYERS', 'SIZE', 'NOTE'],
            sorted.map((r) => [
              `v${r.version}`,
              r.id,
              time(r.createdAt),
              r.services.map((s) => s.name).join(','),
              uniqueLayers(r).size,
              bytes(r.totalSize),
              r.note ?? '',
            ]),
          ),
        );
      }),
    );

  program
    .command('release')
    .description('show a release: services, layers and sizes')
    .argument('<release>', 'release id or a unique start of it; or FLEET vN')
    .argument('[version]', 'with a fleet first: the version, v3 or 3')
    .option('-f, --fleet <fleet>', 'the fleet whose version RELEASE names')
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          first: string,
          second: string | undefined,
          opts: { fleet?: string; json?: boolean },
        ) => {
          const client = await connect();
          const id = await resolveRelease(client, second ?? first, second ? first : opts.fleet);
          const release = await client.get<Release>(releasePath(id));
          if (opts.json) return printJson(release);
          print(releaseText(release, await fleetSlug(client, release.fleetId)));
        },
      ),
    );

  program
    .command('deltas')
    .description(
      'what devices download for a release: one line per release they may run (deltas against full layers), then every delta',
    )
    .argument('<release>', 'release id or a unique start of it; or FLEET vN (ferry deltas pumps v2)')
    .argument('[version]', 'with a fleet first: the version, v3 or 3')
    .option('-f, --fleet <fleet>', 'the fleet whose version RELEASE names')
    .option('--json', "print the server's delta records as JSON")
    .action(
      action(
        async (
          { connect },
          first: string,
          second: string | undefined,
          opts: { fleet?: string; json?: boolean },
        ) => {
          const client = await connect();
          const id = await resolveRelease(client, second ?? first, second ? first : opts.fleet);
          const release = await client.get<Release>(releasePath(id));
          const deltas = await client.get<DeltaRecord[]>(`${releasePath(id)}/deltas`);
          if (opts.json) return printJson(deltas);
          const [releases] = await Promise.all([
            client.get<Release[]>(`${fleetPath(release.fleetId)}/releases`),
          ]);
          const older = releases.filter((r) => r.version < release.version);
          if (opts.json) return printJson(deltas);
          print(byBaseText(release, older, deltas));
          if (deltas.length > 0) print(`\n${deltasText(deltas)}`);
        },
      ),
    );
}
