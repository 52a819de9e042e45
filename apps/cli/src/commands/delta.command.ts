import { stat } from 'node:fs/promises';

import {
  applyDelta,
  DeltaError,
  DeltaInputError,
  encodeDelta,
  readDeltaInfo,
  type DeltaInfo,
} from '@ferry/delta';
import { Command, InvalidArgumentError } from 'commander';

import { createProgress } from './delta-progress';

/** Exit code for a delta or base that failed verification (1 is usage or input errors). */
export const EXIT_VERIFICATION = 2;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Every refusal of a delta (corrupt, lying, wrong base or target, too large) is 2; the rest 1. */
function exitCodeFor(err: unknown): number {
  return err instanceof DeltaError && !(err instanceof DeltaInputError) ? EXIT_VERIFICATION : 1;
}

function parseSize(value: string): number {
  if (!/^\d{1,16}$/.test(value) || Number(value) > Number.MAX_SAFE_INTEGER)
    throw new InvalidArgumentError('expected a size in bytes');
  return Number(value);
}

function parseMebibytes(value: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new InvalidArgumentError('expected a whole number of MiB');
  return Number(value) * 2 ** 20;
}

function parseDigest(value: string): string {
  if (!/^(sha256:)?[0-9a-f]{64}$/.test(value))
    throw new InvalidArgumentError('expected sha256:<64 hex digits>');
  return value.replace(/^sha256:/, '');
}

/** Runs an action, turning a thrown error into a one-line message and an exit code. */
function action<A extends unknown[]>(
  name: string,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const kind = err instanceof Error ? err.name : 'Error';
      process.stderr.write(
        `ferry delta ${name}: ${kind}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      process.exitCode = exitCodeFor(err);
    }
  };
}

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(2)} ${units[unit]}`;
}

function infoText(info: DeltaInfo, file: string): string {
  const { header } = info;
  const lines = [
    `delta:        ${file}`,
    `format:       version ${header.version}`,
    `size:         ${info.size} bytes (${human(info.size)}, ${((100 * info.size) / Math.max(1, header.targetSize)).toFixed(2)} % of the target)`,
    `target:       sha256:${header.targetDigest} (${header.targetSize} bytes)`,
    ...header.bases.map((b, i) => `base ${i}:       sha256:${b.digest} (${b.size} bytes)`),
    `operations:   ${header.opCount}`,
    ...Object.entries(info.stats).map(
      ([kind, s]) =>
        `  ${kind.padEnd(8)}${String(s.count).padStart(10)} ops ${String(s.bytes).padStart(14)} bytes`,
    ),
    `patch controls: ${info.patchControls}`,
    'sections (compressed / raw bytes):',
    `  ops      ${header.ops.compressedSize} / ${header.ops.rawSize}`,
    `  diff     ${header.diff.compressedSize} / ${header.diff.rawSize}`,
    `  literal  ${header.literal.compressedSize} / ${header.literal.rawSize}`,
    ...Object.entries(header.fields ?? {}).map(
      ([name, f]) => `  ${name.padEnd(8)} ${f.compressedSize} / ${f.rawSize}`,
    ),
  ];
  return lines.join('\n') + '\n';
}

/** Registers `ferry delta diff|apply|info`: offline layer deltas with @ferry/delta. */
export function registerDeltaCommands(program: Command): void {
  const delta = program
    .command('delta')
    .description('build, apply and inspect binary deltas between uncompressed layer tars (offline)')
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 usage or input error, 2 the delta was refused (corrupt, truncated or lying delta, wrong base, another target than expected, digest mismatch, target larger than the free space).',
    );

  delta
    .command('diff')
    .description('build a delta that rebuilds --target from the --base layers')
    .requiredOption(
      '--base <tar>',
      'base layer tar (repeat for several, order matters)',
      collect,
      [] as string[],
    )
    .requiredOption('--target <tar>', 'new layer tar')
    .requiredOption('--out <file>', 'where to write the delta')
    .option(
      '--literal-strong-mb <MiB>',
      'compress the new bytes at brotli quality 11 only up to this size, quality 9 beyond (default 12; the worker: WORKER_DELTA_STRONG_LITERAL_MB)',
      parseMebibytes,
    )
    .option('--json', 'print the result as JSON')
    .action(
      action(
        'diff',
        async (opts: {
          base: string[];
          target: string;
          out: string;
          literalStrongMb?: number;
          json?: boolean;
        }) => {
          const progress = createProgress();
          const started = Date.now();
          try {
            const result = await encodeDelta({
              bases: opts.base,
              target: opts.target,
              out: opts.out,
              ...(opts.literalStrongMb !== undefined && { literalStrongLimit: opts.literalStrongMb }),
              onProgress: (p) => progress.update(p.phase, p.done, p.total),
            });
            progress.stop();
            const seconds = (Date.now() - started) / 1000;
            if (opts.json) {
              process.stdout.write(
                JSON.stringify(
                  {
                    out: opts.out,
                    size: result.size,
                    seconds,
                    header: result.header,
                    stats: result.stats,
                    choices: result.choices,
                  },
                  null,
                  2,
                ) + '\n',
              );
            } else {
              const ratio = (100 * result.size) / Math.max(1, result.header.targetSize);
              process.stdout.write(
                `wrote ${opts.out}: ${result.size} bytes (${human(result.size)}, ${ratio.toFixed(2)} % of ${human(result.header.targetSize)}) in ${seconds.toFixed(1)} s\n` +
                  `files: ${Object.entries(result.choices)
                    .map(([k, v]) => `${k} ${v}`)
                    .join(', ')}\n`,
              );
            }
          } finally {
            progress.stop();
          }
        },
      ),
    );

  delta
    .command('apply')
    .description(
      'rebuild a layer from its --base layers and a --delta; the output appears only if its sha256 matches',
    )
    .requiredOption(
      '--base <tar>',
      'base layer tar (repeat for several, in the order the delta lists them)',
      collect,
      [] as string[],
    )
    .requiredOption('--delta <file>', 'delta file')
    .requiredOption('--out <tar>', 'where to write the rebuilt layer')
    .option(
      '--expect-digest <sha256>',
      'the layer you want (diffID): refuse a delta that builds another one before writing',
      parseDigest,
    )
    .option(
      '--expect-size <bytes>',
      'the size of the layer you want: refuse a delta that declares another one before writing',
      parseSize,
    )
    .action(
      action(
        'apply',
        async (opts: {
          base: string[];
          delta: string;
          out: string;
          expectDigest?: string;
          expectSize?: number;
        }) => {
          const progress = createProgress();
          try {
            const result = await applyDelta({
              bases: opts.base,
              delta: opts.delta,
              out: opts.out,
              expected: {
                ...(opts.expectDigest ? { digest: opts.expectDigest } : {}),
                ...(opts.expectSize !== undefined ? { size: opts.expectSize } : {}),
              },
              onProgress: (written, total) => progress.update('apply', written, total),
            });
            progress.stop();
            process.stdout.write(
              `wrote ${opts.out}: ${result.size} bytes, sha256:${result.digest} (verified)\n`,
            );
          } finally {
            progress.stop();
          }
        },
      ),
    );

  delta
    .command('info')
    .description('show a delta: sizes, digests, operation counts and bytes by kind (checksum verified)')
    .argument('<delta>', 'delta file')
    .option('--json', 'print as JSON')
    .action(
      action('info', async (file: string, opts: { json?: boolean }) => {
        await stat(file);
        const info = await readDeltaInfo(file);
        process.stdout.write(opts.json ? JSON.stringify(info, null, 2) + '\n' : infoText(info, file));
      }),
    );
}
