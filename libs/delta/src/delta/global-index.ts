import type { FileHandle } from 'node:fs/promises';

import { BlockIndex } from './block-matcher';
import type { BaseMember } from './candidates';
import type { Piece } from './pieces';
import { readRange } from './pieces';
import { isZero, type TarIndex } from './tar-index';

/** A base member global matches drew most from, and the span of its data they drew from. */
export interface DominantMember {
  member: BaseMember;
  from: number;
  to: number;
}

/** Base bytes `[offset, offset + length)` of base `base`, at `at` in the index's reference. */
interface Segment {
  base: number;
  offset: number;
  length: number;
  at: number;
}

/**
 * The base members a target may have drawn moved code from, end to end in one hash index: a
 * target member is matched against all of them, not only against the base file that looks most
 * like it, so code that moved between files (a bundle split in two, functions moved to another
 * module) is still found, as zstd's --patch-from and HDiffPatch find it by matching against the
 * whole old tar. Base members whose contents the target keeps unchanged are left out: code that
 * moved out of a file left that file changed (or gone), and on a system image most bytes are
 * unchanged files (Debian rootfs: the index holds 14.5 MB of the 121 MB base, for a delta 0.6 %
 * larger than with all of it, and an encoder peak of 375 MB instead of 535 MB).
 */
export class GlobalIndex {
  private constructor(
    private readonly index: BlockIndex,
    /** Where each indexed run of base bytes sits in the reference, in reference order. */
    private readonly segments: Segment[],
    private readonly bases: TarIndex[],
  ) {}

  /**
   * Loads the base members the target does not keep unchanged and indexes them, or returns
   * undefined when they and the index would not fit in `budget` bytes (the encoder then matches
   * per file only).
   */
  static async build(
    bases: TarIndex[],
    handles: FileHandle[],
    target: TarIndex,
    budget: number,
  ): Promise<GlobalIndex | undefined> {
    const kept = new Set(target.entries.map((e) => e.contentHash).filter((hash) => hash !== ''));
    const segments: Segment[] = [];
    let total = 0;
    for (const [base, index] of bases.entries()) {
      for (const entry of index.entries) {
        if (entry.size === 0 || entry.zeroData || kept.has(entry.contentHash)) continue;
        const last = segments[segments.length - 1];
        // Neighbouring members are one run of base bytes (their headers between them included).
        if (last && last.base === base && last.offset + last.length === entry.start)
          last.length += entry.end - entry.start;
        else segments.push({ base, offset: entry.start, length: entry.end - entry.start, at: total });
        total += entry.end - entry.start;
      }
    }
    // The reference itself, plus the hash table (at most 64 MiB, see BlockIndex).
    if (total === 0 || total + Math.min(64 * 2 ** 20, total) > budget) return undefined;
    const all = Buffer.allocUnsafe(total);
    for (const segment of segments)
      (await readRange(handles[segment.base]!, segment.offset, segment.length)).copy(all, segment.at);
    return new GlobalIndex(new BlockIndex(all), segments, bases);
  }

  /** Bytes this index holds (reference and hash table). */
  get bytes(): number {
    return this.index.ref.length + this.index.tableBytes;
  }

  /** Copies and inserts that rebuild `data`, with copies from any indexed base member. */
  pieces(data: Buffer): Piece[] {
    const pieces: Piece[] = [];
    for (const run of this.index.match(data)) {
      if (run.refOffset < 0) {
        const bytes = data.subarray(run.targetOffset, run.targetOffset + run.length);
        pieces.push(isZero(bytes) ? { kind: 'zero', length: bytes.length } : { kind: 'insert', data: bytes });
        continue;
      }
      // A run may cross from one indexed run of base bytes into the next: one copy per run.
      let ref = run.refOffset;
      let left = run.length;
      while (left > 0) {
        const segment = this.segmentAt(ref);
        const into = ref - segment.at;
        const take = Math.min(left, segment.length - into);
        pieces.push({ kind: 'copy', base: segment.base, offset: segment.offset + into, length: take });
        ref += take;
        left -= take;
      }
    }
    return pieces;
  }

  /**
   * The base member the most bytes of `pieces` were copied from, if any, with the span of its
   * data those copies came from (`from` to `to`, offsets in the member's data).
   */
  dominantMember(pieces: Piece[]): DominantMember | undefined {
    const bytes = new Map<BaseMember['entry'], DominantMember & { n: number }>();
    for (const piece of pieces) {
      if (piece.kind !== 'copy') continue;
      const entry = this.entryAt(piece.base, piece.offset);
      if (!entry || entry.size === 0) continue;
      const from = piece.offset - entry.dataOffset;
      const to = Math.min(entry.size, from + piece.length);
      const seen = bytes.get(entry) ?? { member: { base: piece.base, entry }, n: 0, from, to };
      seen.n += piece.length;
      seen.from = Math.min(seen.from, from);
      seen.to = Math.max(seen.to, to);
      bytes.set(entry, seen);
    }
    let best: (DominantMember & { n: number }) | undefined;
    for (const candidate of bytes.values()) if (!best || candidate.n > best.n) best = candidate;
    return best && { member: best.member, from: best.from, to: best.to };
  }

  private segmentAt(ref: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.at <= ref) lo = mid;
      else hi = mid - 1;
    }
    return this.segments[lo]!;
  }

  private entryAt(base: number, offset: number): BaseMember['entry'] | undefined {
    const entries = this.bases[base]!.entries;
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = entries[mid]!;
      if (offset < e.start) hi = mid - 1;
      else if (offset >= e.end) lo = mid + 1;
      else return e;
    }
    return undefined;
  }
}
