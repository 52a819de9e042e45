import type { FileHandle } from 'node:fs/promises';
import { brotliCompressSync, constants } from 'node:zlib';

import { matchBlocks } from './block-matcher';
import type { BaseMember } from './candidates';
import { pruneShortCovers } from './cover-pruner';
import { coverDiff, type CoverSearchOptions } from './cover-search';
import type { DeflateParams } from './deflate-stream';
import { DeltaInputError } from './errors';
import { isZero, type TarEntry } from './tar-index';

/** One step of a planned encoding, turned into operations by the encoder in target order. */
export type Piece =
  | { kind: 'copy'; base: number; offset: number; length: number }
  | { kind: 'insert'; data: Buffer }
  | { kind: 'zero'; length: number }
  | {
      kind: 'patch';
      base: number;
      offset: number;
      length: number;
      controls: number[];
      diff: Buffer;
      extra: Buffer;
    }
  | { kind: 'windowed'; entry: TarEntry; member: BaseMember | undefined }
  | {
      kind: 'deflate';
      params: DeflateParams;
      /** Bytes the inner pieces write, which deflate turns into `outLength` target bytes. */
      rawLength: number;
      outLength: number;
      /** The gzip'd base member the inner pieces refer to, unpacked first. */
      inflate: InflatedMember | undefined;
      pieces: Piece[];
    };

/** A gzip'd base member unpacked to a scratch file the encoder reads as base `handle`. */
export interface InflatedMember {
  handle: number;
  /** Where its deflate stream sits in the real base. */
  base: number;
  offset: number;
  length: number;
  rawSize: number;
}

export async function readRange(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new DeltaInputError('input file shrank while encoding');
    done += bytesRead;
  }
  return buf;
}

export function quickSize(data: Buffer): number {
  if (data.length === 0) return 0;
  return brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 5,
      [constants.BROTLI_PARAM_LGWIN]: 22,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  }).length;
}

/** Rough compressed size of a candidate encoding, to pick the smallest. */
export function estimate(pieces: Piece[]): number {
  const literal: Buffer[] = [];
  const diff: Buffer[] = [];
  let opBytes = 0;
  const flat = pieces.flatMap((piece) => (piece.kind === 'deflate' ? [piece, ...piece.pieces] : [piece]));
  for (const piece of flat) {
    opBytes += piece.kind === 'deflate' ? 8 + (piece.inflate ? 6 : 0) : 3;
    if (piece.kind === 'insert') literal.push(piece.data);
    if (piece.kind === 'patch') {
      literal.push(piece.extra);
      diff.push(piece.diff);
      // Measured on real deltas: a bsdiff control triple costs about 2.4 compressed bytes of
      // the ops section (three varints, little redundancy between them).
      opBytes += (piece.controls.length / 3) * 2.4;
    }
  }
  return quickSize(Buffer.concat(literal)) + quickSize(Buffer.concat(diff)) + opBytes;
}

export function matchPieces(ref: Buffer, refOffset: number, base: number, target: Buffer): Piece[] {
  return matchBlocks(ref, target).map((run): Piece => {
    const data = target.subarray(run.targetOffset, run.targetOffset + run.length);
    if (run.refOffset >= 0)
      return { kind: 'copy', base, offset: refOffset + run.refOffset, length: run.length };
    return isZero(data) ? { kind: 'zero', length: data.length } : { kind: 'insert', data };
  });
}

/**
 * A PATCH of `target` against `old` (the base bytes at `offset` of base `base`): a cover search,
 * its short covers pruned.
 */
export function patchPiece(
  old: Buffer,
  offset: number,
  base: number,
  target: Buffer,
  search: CoverSearchOptions,
): Piece {
  const patch = pruneShortCovers(coverDiff(old, target, search), target);
  return { kind: 'patch', base, offset, length: old.length, ...patch };
}
