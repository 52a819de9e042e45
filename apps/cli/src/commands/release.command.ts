import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';

import type { DeltaRecord, Fleet, Release } from '@ferry/protocol';
import { Command, InvalidArgumentError } from 'commander';

import { action } from '../support/action';
import { fleetPath, fleetSlug, releasePath } from '../support/api-paths';
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
import { byteProgress } from '../support/progress';

/** What the server answers to a push: the release, which layers were new, and the archive format. */
interface PushedRelease extends Release {
  newLayers: string[];
  format: string;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive whole number');
  }
  return n;
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

/** Delta totals: what a device on the bases downloads with these deltas against the full gzip'd layers. */
function deltaTotals(deltas: DeltaRecord[]): {
  byState: Record<string, number>;
  downloadBytes: number;
  fullBytes: number;
  savings: number | null;
} {
  const byState: Record<string, number> = {};
  let downloadBytes = 0;
  let fullBytes = 0;
  for (const d of deltas) {
    byState[d.state] = (byState[d.state] ?? 0) + 1;
    if (d.state === 'ready' && d.size !== null) downloadBytes += d.size;
    else if (d.state === 'full') downloadBytes += d.targetGzipSize;
    else continue;
    fullBytes += d.targetGzipSize;
  }
  return { byState, downloadBytes, fullBytes, savings: fullBytes > 0 ? 1 - downloadBytes / fullBytes : null };
}

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
  const totals = deltaTotals(deltas);
  const states = Object.entries(totals.byState)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
  const settled =
    totals.fullBytes > 0
      ? `; a device on the bases downloads ${bytes(totals.downloadBytes)} instead of ${bytes(totals.fullBytes)} (${percent(totals.savings)} saved)`
      : '';
  return (
    table(
      ['BASES → TARGET', 'STATE', 'DELTA', 'FULL (GZIP)', 'SAVINGS', ...(withErrors ? ['ERROR'] : [])],
      rows,
    ) + `total: ${plural(deltas.length, 'delta')} (${states})${settled}\n`
  );
}

/** Registers `ferry push`, `ferry releases`, `ferry release` and `ferry deltas`. */
export function registerReleaseCommands(program: Command): void {
  program
    .command('push')
    .description('push a release: a docker save or OCI image archive, from a file or stdin (-)')
    .argument('<fleet>', 'fleet slug or id')
    .argument('<archive>', 'archive file, or - for stdin (docker save app:2 | ferry push FLEET -)')
    .option('--version <n>', 'release version (default: the next one)', positiveInteger)
    .option('--note <text>', 'a note shown with the release')
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
          opts: { version?: number; note?: string; json?: boolean },
        ) => {
          const client = await connect();
          // Fail on an unknown fleet or a refused token before sending gigabytes.
          const target = await client.get<Fleet>(fleetPath(fleet));
          const { stream, size } = await openArchive(archive);
          const progress = byteProgress(`pushing to ${target.slug}`, size, { json: opts.json });
          let release: PushedRelease;
          try {
            release = await client.upload<PushedRelease>(
              `${fleetPath(target.slug)}/releases`,
              { version: opts.version, note: opts.note },
              stream,
              { contentType: 'application/x-tar', size, onProgress: (done) => progress.update(done) },
            );
          } finally {
            progress.stop();
            stream.destroy();
          }
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
              : `deltas queued: ${deltas.length} (ferry deltas ${release.id})\n${deltasText(deltas)}`,
          );
        },
      ),
    );

  program
    .command('releases')
    .description("list a fleet's releases, newest first")
    .argument('<fleet>', 'fleet slug or id')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, fleet: string, opts: { json?: boolean }) => {
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
    .argument('<id>', 'release id')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, id: string, opts: { json?: boolean }) => {
        const client = await connect();
        const release = await client.get<Release>(releasePath(id));
        if (opts.json) return printJson(release);
        print(releaseText(release, await fleetSlug(client, release.fleetId)));
      }),
    );

  program
    .command('deltas')
    .description('show the layer deltas built for a release: bases → target, state, size, savings')
    .argument('<release>', 'release id')
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, id: string, opts: { json?: boolean }) => {
        const deltas = await (await connect()).get<DeltaRecord[]>(`${releasePath(id)}/deltas`);
        if (opts.json) return printJson(deltas);
        print(deltasText(deltas));
      }),
    );
}
