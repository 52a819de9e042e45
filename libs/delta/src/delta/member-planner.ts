import type { FileHandle } from 'node:fs/promises';

import type { BaseCatalog, BaseMember } from './candidates';
import type { DominantMember, GlobalIndex } from './global-index';
import { CoverIndex, type CoverSearchOptions } from './cover-search';
import { findDeflateParams, readGzipMember } from './gzip-member';
import type { InflatedBases } from './inflated-bases';
import { estimate, matchPieces, patchPiece, readRange, type Piece } from './pieces';
import type { TarEntry } from './tar-index';

/** How target members' data ended up encoded. */
export type EncodingChoice =
  'copy' | 'zero' | 'patch' | 'match' | 'global' | 'literal' | 'windowed' | 'recompressed';

export function emptyChoices(): Record<EncodingChoice, number> {
  return { copy: 0, zero: 0, patch: 0, match: 0, global: 0, literal: 0, windowed: 0, recompressed: 0 };
}

/**
 * Cover search of a whole file: every old position indexed and up to 512 candidates per lookup,
 * which on minified JavaScript (many repeated 8-byte strings) finds what bsdiff's suffix array
 * finds (node-modules: 235,569 B against bsdiff's 235,710).
 */
export const FILE_COVER_SEARCH: CoverSearchOptions = { maxChain: 512, step: 1 };

export interface PlannerLimits {
  /** Largest old or new file searched for a patch as a whole. */
  patchMax: number;
  /** Memory the cover index of one old file may take (`CoverIndex.cost`). */
  patchMemory: number;
  /** Largest file matched in memory as one piece; larger ones are matched window by window. */
  matcherMax: number;
}

/**
 * What a DEFLATE block must save to be chosen, in bytes: one per 256 bytes it deflates. The
 * device runs zlib's deflate in JavaScript (about a second of CPU per MB at level 9 on the
 * agent's interpreter), which is worth it for the tens of kB a changed .tgz saves, not for a few
 * bytes.
 */
function deflateCost(pieces: Piece[]): number {
  return pieces.reduce((cost, piece) => cost + (piece.kind === 'deflate' ? piece.rawLength / 256 : 0), 0);
}

/** Bytes `[from, from + length)` of a base member's data, to patch a target file against. */
interface OldRange {
  member: BaseMember;
  from: number;
  length: number;
}

/**
 * The part of the member global matches drew most from that a patch of an `n`-byte file is
 * searched against: the whole member when it is at most 4 times the file, else the span the
 * matches came from with `n` bytes either side. A small file drawing on a large one (a header
 * against a whole library) otherwise indexed all of it for nothing: on the Debian rootfs, such
 * patches indexed 103 of the 131 MB the cover search indexed and were never the cheapest
 * encoding; the encoder took 13 s instead of 18 s (its sections at brotli quality 5), the same
 * bytes out. three-moved-code: 4.7 s instead of 9.2 s, 121,161 B instead of 121,088.
 */
function patchRange(dominant: DominantMember, n: number): OldRange {
  const { member } = dominant;
  const size = member.entry.size;
  if (size <= 4 * n) return { member, from: 0, length: size };
  const from = Math.max(0, dominant.from - n);
  const to = Math.min(size, dominant.to + n);
  return { member, from, length: to - from };
}

/**
 * Stage 2 of encoding: for one target member, the pieces (copies, patches, inserts) that
 * rebuild its header and its data, the cheapest of every candidate encoding by a quick
 * compressed-size estimate. Pure planning: nothing is written here.
 */
export class MemberPlanner {
  readonly choices = emptyChoices();

  constructor(
    private readonly catalog: BaseCatalog,
    private readonly target: FileHandle,
    private readonly bases: FileHandle[],
    private readonly limits: PlannerLimits,
    private readonly global: GlobalIndex | undefined,
    private readonly inflated?: InflatedBases,
  ) {}

  /** Header and data of `entry`, in target order. */
  async plan(entry: TarEntry): Promise<Piece[]> {
    const [header, data] = await Promise.all([this.planHeader(entry), this.planData(entry)]);
    return [...header, ...data];
  }

  /** Identical header bytes anywhere, else a byte-wise patch of the most similar header, else new bytes. */
  private async planHeader(entry: TarEntry): Promise<Piece[]> {
    const length = entry.dataOffset - entry.start;
    const same = this.catalog.sameHeader(entry);
    if (same) return [{ kind: 'copy', base: same.base, offset: same.entry.start, length }];
    const bytes = await readRange(this.target, entry.start, length);
    const like = this.catalog.similar(entry, false);
    if (like && like.entry.dataOffset - like.entry.start === length) {
      const old = await readRange(this.bases[like.base]!, like.entry.start, length);
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
  }

  private async planData(entry: TarEntry): Promise<Piece[]> {
    const padding = entry.end - entry.dataOffset - entry.size;
    const paddingPiece: Piece = entry.zeroPadding
      ? { kind: 'zero', length: padding }
      : { kind: 'insert', data: await readRange(this.target, entry.dataOffset + entry.size, padding) };
    if (entry.size === 0) return [paddingPiece];
    const same = this.catalog.sameContent(entry);
    if (same) {
      this.choices.copy++;
      const withPadding = same.entry.zeroPadding && entry.zeroPadding;
      const length = withPadding ? entry.end - entry.dataOffset : entry.size;
      const copy: Piece = { kind: 'copy', base: same.base, offset: same.entry.dataOffset, length };
      return withPadding ? [copy] : [copy, paddingPiece];
    }
    if (entry.zeroData) {
      this.choices.zero++;
      return [
        { kind: 'zero', length: entry.end - entry.dataOffset - (entry.zeroPadding ? 0 : padding) },
        ...(entry.zeroPadding ? [] : [paddingPiece]),
      ];
    }
    const member = this.catalog.similar(entry);
    const { matcherMax } = this.limits;
    if (entry.size > matcherMax || (member && member.entry.size > matcherMax)) {
      this.choices.windowed++;
      return [{ kind: 'windowed', entry, member }, paddingPiece];
    }
    const data = await readRange(this.target, entry.dataOffset, entry.size);
    let best = await this.cheapest(data, member);
    const recompressed = await this.recompressed(data, member);
    if (recompressed && estimate(recompressed) + deflateCost(recompressed) < estimate(best.pieces))
      best = { choice: 'recompressed', pieces: recompressed };
    this.choices[best.choice]++;
    return [...best.pieces, paddingPiece];
  }

  /**
   * A gzip file Ferry's deflate rebuilds byte for byte: its header and trailer as new bytes and
   * its contents encoded like any file (against the similar base file's contents when that is
   * gzip'd too, else against every base or as new bytes), inside a DEFLATE block.
   */
  private async recompressed(data: Buffer, member: BaseMember | undefined): Promise<Piece[] | undefined> {
    if (!this.inflated || data.length < 64 || data[0] !== 0x1f || data[1] !== 0x8b) return undefined;
    const gz = readGzipMember(data, this.limits.matcherMax);
    const params = gz && findDeflateParams(gz.raw, gz.body, data[8]!);
    if (!gz || !params) return undefined;
    const old =
      member && member.entry.size <= this.limits.matcherMax
        ? await this.inflated.of(member, () => this.read(member), gz.raw.length)
        : undefined;
    const inner = await this.cheapest(gz.raw, old?.member);
    return [
      { kind: 'insert', data: data.subarray(0, gz.headerLength) },
      {
        kind: 'deflate',
        params,
        rawLength: gz.raw.length,
        outLength: gz.body.length,
        inflate: old?.inflate,
        pieces: inner.pieces,
      },
      { kind: 'insert', data: data.subarray(data.length - 8) },
    ];
  }

  /**
   * Candidates: new bytes; LZ matches against the similar file; LZ matches against every base
   * at once (moved code); a bsdiff-style patch (cover search) against the similar file and
   * against the base file the global matches drew most from, when that is another file (only
   * the part of it they drew from, when it is much larger: see {@link patchRange}).
   */
  private async cheapest(
    data: Buffer,
    member: BaseMember | undefined,
  ): Promise<{ choice: EncodingChoice; pieces: Piece[] }> {
    const options: { choice: EncodingChoice; pieces: Piece[] }[] = [
      { choice: 'literal', pieces: [{ kind: 'insert', data }] },
    ];
    const patchAgainst: OldRange[] = [];
    let settled = false;
    // The similar file's bytes, read once for LZ matching and again of use for its patch.
    let similar: Buffer | undefined;
    if (member && data.length >= 64) {
      similar = await this.read(member);
      const matched = matchPieces(similar, member.entry.dataOffset, member.base, data);
      options.push({ choice: 'match', pieces: matched });
      settled = matched.length <= 4 && matched.every((p) => p.kind !== 'insert');
      if (!settled) patchAgainst.push({ member, from: 0, length: member.entry.size });
    }
    if (this.global && !settled && data.length >= 64) {
      const pieces = this.global.pieces(data);
      options.push({ choice: 'global', pieces });
      const dominant = this.global.dominantMember(pieces);
      const range = dominant && dominant.member.entry !== member?.entry && patchRange(dominant, data.length);
      if (range) patchAgainst.push(range);
    }
    const { patchMax, patchMemory } = this.limits;
    for (const old of patchAgainst) {
      if (old.length > patchMax || data.length > patchMax) continue;
      if (CoverIndex.cost(old.length, FILE_COVER_SEARCH.step) > patchMemory) continue;
      const offset = old.member.entry.dataOffset + old.from;
      const bytes =
        old.member === member && similar
          ? similar
          : await readRange(this.bases[old.member.base]!, offset, old.length);
      options.push({
        choice: 'patch',
        pieces: [patchPiece(bytes, offset, old.member.base, data, FILE_COVER_SEARCH)],
      });
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
    return best;
  }

  private read(member: BaseMember): Promise<Buffer> {
    return readRange(this.bases[member.base]!, member.entry.dataOffset, member.entry.size);
  }
}
