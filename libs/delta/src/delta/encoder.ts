import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { decodeDelta } from './decoder';
import { BaseCatalog } from './candidates';
import { DeltaWriter, type CompressionOptions, type OpStats } from './delta-writer';
import { DeltaInputError } from './errors';
import { MAX_BASES, type DeltaHeader } from './format';
import { GlobalIndex } from './global-index';
import { InflatedBases } from './inflated-bases';
import { MemberPlanner, type EncodingChoice } from './member-planner';
import { PieceEmitter } from './piece-emitter';
import type { Piece } from './pieces';
import { indexTar, type TarIndex } from './tar-index';

export type { EncodingChoice } from './member-planner';

export interface EncodeProgress {
  phase: 'index' | 'encode' | 'compress';
  /** Bytes done in this phase (compress reports 0 then 1 of 1). */
  done: number;
  total: number;
}

export interface EncodeDeltaOptions extends CompressionOptions {
  /** Base layer tar files (uncompressed), in the order the decoder will be given them. */
  bases: string[];
  /** The new layer tar file (uncompressed). */
  target: string;
  /** Where the delta goes (written to a temporary file beside it, then renamed). */
  out: string;
  onProgress?: (progress: EncodeProgress) => void;
  /**
   * Folder for scratch files (spooled sections, unpacked gzip members).
   * @defaultValue the folder of `out`
   */
  tempDir?: string;
  /**
   * Largest old or new file searched for a bsdiff-style patch as a whole (its cover index takes
   * about 9x the old file; larger files are matched by LZ, or window by window).
   * @defaultValue 16 MiB
   */
  patchMaxSize?: number;
  /**
   * Largest file matched in memory as one piece; larger ones are matched window by window.
   * @defaultValue 64 MiB
   */
  matcherMaxSize?: number;
  /**
   * Target bytes encoded at once in a file over `matcherMaxSize`, each a patch against twice as
   * much of the similar file around the same relative position.
   * @defaultValue 8 MiB
   */
  windowSize?: number;
  /**
   * Memory the cover index of one old file may take (`CoverIndex.cost`, about 9x the file); a
   * file needing more is matched by LZ only.
   * @defaultValue 320 MiB, or 40 % of `memoryBudget`
   */
  patchMemoryBudget?: number;
  /**
   * Bytes of target members whose encodings may be prepared ahead of writing them (about
   * three times the file size each), so reading and planning overlap without holding a whole
   * layer.
   * @defaultValue 192 MiB
   */
  lookaheadBytes?: number;
  /**
   * Decode the finished delta (before it is renamed into place) and check that it rebuilds
   * the target's sha256.
   * @defaultValue true
   */
  verify?: boolean;
  /**
   * Memory the whole-base-set index may hold (every base member the target does not keep
   * unchanged, in memory, plus its hash table);
   * when the bases need more, members are matched against their most similar base file only.
   * @defaultValue 384 MiB, or 40 % of `memoryBudget`
   */
  globalIndexBudget?: number;
  /**
   * The encoder's memory budget for its large structures, split 40 % whole-base index, 40 %
   * cover index of the file being patched, 20 % plans held ahead; each is enforced by falling
   * back (per-file matching, no patch search for a file whose index exceeds its share, fewer
   * plans ahead), never by failing.
   * Explicit per-structure options win over the split.
   * @defaultValue unset: 384 + 320 + 192 MiB
   */
  memoryBudget?: number;
}

export interface EncodeDeltaResult {
  header: DeltaHeader;
  /** Bytes of the delta file. */
  size: number;
  stats: OpStats;
  /** Number of target members whose data took each encoding. */
  choices: Record<EncodingChoice, number>;
  /** Milliseconds spent indexing, choosing operations and compressing. */
  timings: { index: number; encode: number; compress: number };
}

const MiB = 2 ** 20;
/** Member plans in flight at most. */
const PLANS_AHEAD = 4;

/** Stage 1: checks the inputs and indexes every member of every base and of the target. */
async function indexInputs(
  options: EncodeDeltaOptions,
  progress: (p: EncodeProgress) => void,
): Promise<{ bases: TarIndex[]; target: TarIndex }> {
  if (options.bases.length < 1 || options.bases.length > MAX_BASES) {
    throw new DeltaInputError(
      `a delta needs between 1 and ${MAX_BASES} base layers, got ${options.bases.length}`,
    );
  }
  const files = [...options.bases, options.target];
  const sizes = await Promise.all(
    files.map(async (file) => {
      try {
        const s = await stat(file);
        if (!s.isFile()) throw new Error('not a regular file');
        return s.size;
      } catch (err) {
        throw new DeltaInputError(`cannot read ${file}: ${(err as Error).message}`);
      }
    }),
  );
  const totalIndex = sizes.reduce((a, b) => a + b, 0);
  let indexed = 0;
  const indexes: TarIndex[] = [];
  for (const file of files) {
    indexes.push(
      await indexTar(file, (bytes) => {
        indexed += bytes;
        progress({ phase: 'index', done: indexed, total: totalIndex });
      }),
    );
  }
  const target = indexes.pop()!;
  return { bases: indexes, target };
}

/**
 * Stages 2 and 3 together: members are planned ahead (their reads overlapping the matching of
 * the one before) but emitted in target order; the bytes plans may hold (target file, similar
 * base file, candidate encodings) are capped by `lookahead`.
 */
async function planAndEmit(
  target: TarIndex,
  planner: MemberPlanner,
  emitter: PieceEmitter,
  limits: { lookahead: number; matcherMax: number },
  progress: (p: EncodeProgress) => void,
): Promise<void> {
  const inflight: { plan: Promise<Piece[]>; bytes: number }[] = [];
  let inflightBytes = 0;
  const drain = async () => {
    const next = inflight.shift()!;
    inflightBytes -= next.bytes;
    await emitter.emit(await next.plan);
  };
  let position = 0;
  for (const entry of target.entries) {
    if (entry.start !== position) throw new DeltaInputError(`${target.file}: tar members are not contiguous`);
    position = entry.end;
    const bytes = 3 * Math.min(entry.size, limits.matcherMax) + 4096;
    while (
      inflight.length > 0 &&
      (inflight.length >= PLANS_AHEAD || inflightBytes + bytes > limits.lookahead)
    ) {
      await drain();
    }
    const plan = planner.plan(entry);
    // Avoid unhandled rejections while a plan waits its turn.
    plan.catch(() => undefined);
    inflight.push({ plan, bytes });
    inflightBytes += bytes;
    progress({ phase: 'encode', done: entry.start, total: target.size });
  }
  while (inflight.length > 0) await drain();
  await emitter.raw(target.tailOffset, target.size);
  progress({ phase: 'encode', done: target.size, total: target.size });
}

/**
 * Builds a delta that rebuilds `target` byte for byte from `bases`, in four stages: index every
 * member (`indexInputs`); plan each target member's header and data as the cheapest of a copy
 * of identical base bytes (found by content hash, so renames and moves between layers cost
 * nothing), a bsdiff-style patch or LZ matches against the most similar base file or against every
 * base at once, new bytes, or — for a gzip file Ferry's deflate rebuilds byte for byte — any of
 * these on its contents against the similar gzip file's contents (`MemberPlanner`); emit the plans as operations in target order
 * (`PieceEmitter`); then compress all new and patch bytes in one strong brotli pass per section
 * and decode the result once to verify it (`DeltaWriter.finish`).
 */
export async function encodeDelta(options: EncodeDeltaOptions): Promise<EncodeDeltaResult> {
  const progress = options.onProgress ?? (() => undefined);
  const started = Date.now();
  const { bases: indexes, target } = await indexInputs(options, progress);
  const indexDone = Date.now();
  const catalog = new BaseCatalog(indexes);

  const scratch = join(
    options.tempDir ?? dirname(options.out),
    `.ferry-delta-${randomBytes(6).toString('hex')}`,
  );
  await mkdir(scratch, { recursive: true });
  const budget = options.memoryBudget;
  const limits = {
    patchMax: options.patchMaxSize ?? 16 * MiB,
    patchMemory: options.patchMemoryBudget ?? (budget !== undefined ? budget * 0.4 : 320 * MiB),
    matcherMax: options.matcherMaxSize ?? 64 * MiB,
  };
  const baseHandles: FileHandle[] = [];
  let targetHandle: FileHandle | undefined;
  let writer: DeltaWriter | undefined;
  try {
    for (const file of options.bases) baseHandles.push(await open(file, 'r'));
    targetHandle = await open(options.target, 'r');
    const w = (writer = await DeltaWriter.create(scratch, options));
    const global = await GlobalIndex.build(
      indexes,
      baseHandles,
      target,
      options.globalIndexBudget ?? (budget !== undefined ? budget * 0.4 : 384 * MiB),
    );
    const planner = new MemberPlanner(
      catalog,
      targetHandle,
      baseHandles,
      limits,
      global,
      new InflatedBases(baseHandles, scratch, limits.matcherMax),
    );
    const emitter = new PieceEmitter(w, targetHandle, baseHandles, options.windowSize);
    await planAndEmit(
      target,
      planner,
      emitter,
      {
        lookahead: options.lookaheadBytes ?? (budget !== undefined ? budget * 0.2 : 192 * MiB),
        matcherMax: limits.matcherMax,
      },
      progress,
    );
    progress({ phase: 'compress', done: 0, total: 1 });
    const encoded = Date.now();
    const header = {
      targetDigest: target.digest,
      targetSize: target.size,
      bases: indexes.map((index) => ({ digest: index.digest, size: index.size })),
    };
    const verify = async (file: string) => {
      // Decoding what was just written is cheap next to encoding, and a delta that cannot
      // rebuild its target must never reach a device.
      for await (const chunk of decodeDelta({ bases: options.bases, delta: file, verifyBases: false }))
        void chunk;
    };
    const result = await w.finish(options.out, header, options.verify === false ? undefined : verify);
    progress({ phase: 'compress', done: 1, total: 1 });
    const timings = {
      index: indexDone - started,
      encode: encoded - indexDone,
      compress: Date.now() - encoded,
    };
    return { ...result, stats: w.stats, choices: planner.choices, timings };
  } finally {
    await writer?.dispose();
    await Promise.allSettled(
      [...baseHandles, ...(targetHandle ? [targetHandle] : [])].map((fh) => fh.close()),
    );
    await rm(scratch, { recursive: true, force: true });
  }
}
