import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { decodeDelta } from './decoder';
import { BsdiffPool } from './bsdiff-pool';
import { BaseCatalog, type BaseMember } from './candidates';
import { DeltaWriter, type CompressionOptions, type OpStats } from './delta-writer';
import { estimate, matchPieces, readRange, tryParseBsdiff40, type Piece } from './pieces';
import { DeltaInputError } from './errors';
import { MAX_BASES, type DeltaHeader } from './format';
import { indexTar, isZero, type TarEntry, type TarIndex } from './tar-index';

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
   * Folder for scratch files (spooled sections, bsdiff inputs).
   * @defaultValue the folder of `out`
   */
  tempDir?: string;
  /**
   * Largest old or new file handed to bsdiff; bsdiff-node needs about 17x the old file in RAM.
   * @defaultValue 16 MiB
   */
  bsdiffMaxSize?: number;
  /**
   * Largest file matched in memory as one piece; larger ones are matched window by window.
   * @defaultValue 64 MiB
   */
  matcherMaxSize?: number;
  /**
   * bsdiff child processes running at once.
   * @defaultValue 2
   */
  concurrency?: number;
  /**
   * A bsdiff job running longer than this is killed and the file encoded otherwise.
   * @defaultValue 300000
   */
  bsdiffTimeoutMs?: number;
  /**
   * Estimated memory the bsdiff children may use together (about 17x each old file); one job
   * may always run.
   * @defaultValue 320 MiB
   */
  bsdiffMemoryBudget?: number;
  /**
   * Bytes of target members whose encodings may be prepared ahead of writing them (about
   * three times the file size each), so bsdiff jobs overlap without holding a whole layer.
   * @defaultValue 192 MiB
   */
  lookaheadBytes?: number;
  /**
   * Decode the finished delta (before it is renamed into place) and check that it rebuilds
   * the target's sha256.
   * @defaultValue true
   */
  verify?: boolean;
}

/** How target members' data ended up encoded. */
export type EncodingChoice = 'copy' | 'zero' | 'bsdiff' | 'match' | 'literal' | 'windowed';

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
/** Target bytes matched at once for files too large to match whole. */
const WINDOW = 32 * MiB;

/**
 * Builds a delta that rebuilds `target` byte for byte from `bases`. Every base member is
 * indexed; each target member's header and data take the cheapest of: a copy of identical
 * base bytes (found by content hash, so renames and moves between layers cost nothing), a
 * bsdiff patch or LZ matches against the most similar base file, or new bytes. All new and
 * patch bytes are then compressed in one strong brotli pass per section.
 */
export async function encodeDelta(options: EncodeDeltaOptions): Promise<EncodeDeltaResult> {
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
  const progress = options.onProgress ?? (() => undefined);
  const started = Date.now();
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
  const indexDone = Date.now();
  const catalog = new BaseCatalog(indexes);

  const scratch = join(
    options.tempDir ?? dirname(options.out),
    `.ferry-delta-${randomBytes(6).toString('hex')}`,
  );
  await mkdir(scratch, { recursive: true });
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const pool = new BsdiffPool(
    scratch,
    concurrency,
    options.bsdiffTimeoutMs ?? 300_000,
    options.bsdiffMemoryBudget ?? 320 * MiB,
  );
  const lookahead = options.lookaheadBytes ?? 192 * MiB;
  const bsdiffMax = options.bsdiffMaxSize ?? 16 * MiB;
  const matcherMax = options.matcherMaxSize ?? 64 * MiB;
  const baseHandles: FileHandle[] = [];
  let targetHandle: FileHandle | undefined;
  let writer: DeltaWriter | undefined;
  const choices: Record<EncodingChoice, number> = {
    copy: 0,
    zero: 0,
    bsdiff: 0,
    match: 0,
    literal: 0,
    windowed: 0,
  };
  try {
    for (const file of options.bases) baseHandles.push(await open(file, 'r'));
    const tfh = (targetHandle = await open(options.target, 'r'));
    const w = (writer = await DeltaWriter.create(scratch));
    const baseFh = (i: number) => baseHandles[i]!;

    const planHeader = async (entry: TarEntry): Promise<Piece[]> => {
      const length = entry.dataOffset - entry.start;
      const same = catalog.sameHeader(entry);
      if (same) return [{ kind: 'copy', base: same.base, offset: same.entry.start, length }];
      const bytes = await readRange(tfh, entry.start, length);
      const like = catalog.similar(entry, false);
      if (like && like.entry.dataOffset - like.entry.start === length) {
        const old = await readRange(baseFh(like.base), like.entry.start, length);
        for (let i = 0; i < length; i++) bytes[i] = (bytes[i]! - old[i]!) & 0xff;
        return [
          {
            kind: 'patch',
            base: like.base,
            offset: like.entry.start,
            length,
            controls: [length, 0, 0],
            diff: bytes,
            extra: Buffer.alloc(0),
          },
        ];
      }
      return [{ kind: 'insert', data: bytes }];
    };

    const planData = async (entry: TarEntry): Promise<Piece[]> => {
      const padding = entry.end - entry.dataOffset - entry.size;
      const paddingPiece: Piece = entry.zeroPadding
        ? { kind: 'zero', length: padding }
        : { kind: 'insert', data: await readRange(tfh, entry.dataOffset + entry.size, padding) };
      if (entry.size === 0) return [paddingPiece];
      const same = catalog.sameContent(entry);
      if (same) {
        choices.copy++;
        const withPadding = same.entry.zeroPadding && entry.zeroPadding;
        const length = withPadding ? entry.end - entry.dataOffset : entry.size;
        const copy: Piece = { kind: 'copy', base: same.base, offset: same.entry.dataOffset, length };
        return withPadding ? [copy] : [copy, paddingPiece];
      }
      if (entry.zeroData) {
        choices.zero++;
        return [
          { kind: 'zero', length: entry.end - entry.dataOffset - (entry.zeroPadding ? 0 : padding) },
          ...(entry.zeroPadding ? [] : [paddingPiece]),
        ];
      }
      const member = catalog.similar(entry);
      if (entry.size > matcherMax || (member && member.entry.size > matcherMax)) {
        choices.windowed++;
        return [{ kind: 'windowed', entry, member }, paddingPiece];
      }
      const data = await readRange(tfh, entry.dataOffset, entry.size);
      const options: { choice: EncodingChoice; pieces: Piece[] }[] = [
        { choice: 'literal', pieces: [{ kind: 'insert', data }] },
      ];
      if (member && entry.size >= 64) {
        const ref = await readRange(baseFh(member.base), member.entry.dataOffset, member.entry.size);
        const matched = matchPieces(ref, member.entry.dataOffset, member.base, data);
        options.push({ choice: 'match', pieces: matched });
        const nearlyAllCopied = matched.length <= 4 && matched.every((p) => p.kind !== 'insert');
        if (!nearlyAllCopied && member.entry.size <= bsdiffMax && entry.size <= bsdiffMax) {
          const patch = await pool.diff(ref, data);
          const parsed = patch && tryParseBsdiff40(patch);
          if (parsed) {
            options.push({
              choice: 'bsdiff',
              pieces: [
                {
                  kind: 'patch',
                  base: member.base,
                  offset: member.entry.dataOffset,
                  length: member.entry.size,
                  controls: parsed.controls,
                  diff: parsed.diff,
                  extra: parsed.extra,
                },
              ],
            });
          }
        }
      }
      let best = options[0]!;
      let bestCost = Infinity;
      for (const option of options) {
        const cost = estimate(option.pieces);
        if (cost < bestCost) {
          best = option;
          bestCost = cost;
        }
      }
      choices[best.choice]++;
      return [...best.pieces, paddingPiece];
    };

    const emitWindowed = async (entry: TarEntry, member: BaseMember | undefined): Promise<void> => {
      for (let at = 0; at < entry.size; at += WINDOW) {
        const data = await readRange(tfh, entry.dataOffset + at, Math.min(WINDOW, entry.size - at));
        if (!member || isZero(data)) {
          await emit(isZero(data) ? [{ kind: 'zero', length: data.length }] : [{ kind: 'insert', data }]);
          continue;
        }
        const centre = Math.floor((at / entry.size) * member.entry.size);
        const refStart = Math.max(0, Math.min(member.entry.size - 2 * WINDOW, centre - WINDOW / 2));
        const refLength = Math.min(2 * WINDOW, member.entry.size - refStart);
        const ref = await readRange(baseFh(member.base), member.entry.dataOffset + refStart, refLength);
        await emit(matchPieces(ref, member.entry.dataOffset + refStart, member.base, data));
      }
    };

    const emit = async (pieces: Piece[]): Promise<void> => {
      for (const piece of pieces) {
        switch (piece.kind) {
          case 'copy':
            await w.copy(piece.base, piece.offset, piece.length);
            break;
          case 'insert':
            await w.insert(piece.data);
            break;
          case 'zero':
            await w.zero(piece.length);
            break;
          case 'patch':
            await w.patch(piece.base, piece.offset, piece.length, piece.controls, piece.diff, piece.extra);
            break;
          case 'windowed':
            await emitWindowed(piece.entry, piece.member);
            break;
        }
      }
    };

    // Plans run ahead (bsdiff jobs in parallel) but are emitted in target order; the bytes
    // they may hold (target file, similar base file, candidate encodings) are capped.
    const inflight: { plan: Promise<Piece[]>; bytes: number }[] = [];
    let inflightBytes = 0;
    const drain = async () => {
      const next = inflight.shift()!;
      inflightBytes -= next.bytes;
      await emit(await next.plan);
    };
    let position = 0;
    for (const entry of target.entries) {
      if (entry.start !== position)
        throw new DeltaInputError(`${options.target}: tar members are not contiguous`);
      position = entry.end;
      const bytes = 3 * Math.min(entry.size, matcherMax) + 4096;
      while (
        inflight.length > 0 &&
        (inflight.length >= concurrency * 2 || inflightBytes + bytes > lookahead)
      ) {
        await drain();
      }
      const plan = Promise.all([planHeader(entry), planData(entry)]).then(([h, d]) => [...h, ...d]);
      // Avoid unhandled rejections while a plan waits its turn.
      plan.catch(() => undefined);
      inflight.push({ plan, bytes });
      inflightBytes += bytes;
      progress({ phase: 'encode', done: entry.start, total: target.size });
    }
    while (inflight.length > 0) await drain();
    for (let at = target.tailOffset; at < target.size; at += MiB) {
      const data = await readRange(tfh, at, Math.min(MiB, target.size - at));
      await emit(isZero(data) ? [{ kind: 'zero', length: data.length }] : [{ kind: 'insert', data }]);
    }
    progress({ phase: 'encode', done: target.size, total: target.size });
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
    const result = await w.finish(
      options.out,
      header,
      options,
      options.verify === false ? undefined : verify,
    );
    progress({ phase: 'compress', done: 1, total: 1 });
    const timings = {
      index: indexDone - started,
      encode: encoded - indexDone,
      compress: Date.now() - encoded,
    };
    return { ...result, stats: w.stats, choices, timings };
  } finally {
    pool.close();
    await writer?.dispose();
    await Promise.allSettled(
      [...baseHandles, ...(targetHandle ? [targetHandle] : [])].map((fh) => fh.close()),
    );
    await rm(scratch, { recursive: true, force: true });
  }
}
