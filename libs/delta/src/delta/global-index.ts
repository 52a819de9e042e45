import type { FileHandle } from 'node:fs/promises';

import { BlockIndex } from './block-matcher';
import type { BaseMember } from './candidates';
import type { Piece } from './pieces';
import { readRange } from './pieces';
import { isZero, type TarIndex } from './tar-index';

/**
 * Every base layer, end to end, in one hash index: a target member is matched against the whole
 * base set, not only against the base file that looks most like it, so code that moved between
 * files (a bundle split in two, functions moved to another module) is still found, as zstd's
 * --patch-from and HDiffPatch find it by matching against the whole old tar.
 */
export class GlobalIndex {
  private constructor(
    private readonly index: BlockIndex,
    /** Offset of each base layer in the concatenation. */
    private readonly starts: number[],
    private readonly bases: TarIndex[],
  ) {}

  /**
   * Loads the bases and indexes them, or returns undefined when they and the index would not fit
   * in `budget` bytes (the encoder then matches per file only, as before).
   */
  static async build(
    bases: TarIndex[],
    handles: FileHandle[],
    budget: number,
  ): Promise<GlobalIndex | undefined> {
    const total = bases.reduce((n, b) => n + b.size, 0);
    // The reference itself, plus the hash table (at most 64 MiB, see BlockIndex).
    if (total === 0 || total + Math.min(64 * 2 ** 20, total) > budget) return undefined;
    const all = Buffer.allocUnsafe(total);
    const starts: number[] = [];
    let at = 0;
    for (const [i, base] of bases.entries()) {
      starts.push(at);
      (await readRange(handles[i]!, 0, base.size)).copy(all, at);
      at += base.size;
    }
    return new GlobalIndex(new BlockIndex(all), starts, bases);
  }

  /** Bytes this index holds (reference and hash table). */
  get bytes(): number {
    return this.index.ref.length + this.index.tableBytes;
  }

  /** Copies and inserts that rebuild `data`, with copies from anywhere in any base. */
  pieces(data: Buffer): Piece[] {
    const pieces: Piece[] = [];
    for (const run of this.index.match(data)) {
      if (run.refOffset < 0) {
        const bytes = data.subarray(run.targetOffset, run.targetOffset + run.length);
        pieces.push(isZero(bytes) ? { kind: 'zero', length: bytes.length } : { kind: 'insert', data: bytes });
        continue;
      }
      // A run may cross from one base layer into the next: one copy per base.
      let ref = run.refOffset;
      let left = run.length;
      while (left > 0) {
        const base = this.baseAt(ref);
        const offset = ref - this.starts[base]!;
        const take = Math.min(left, this.bases[base]!.size - offset);
        pieces.push({ kind: 'copy', base, offset, length: take });
        ref += take;
        left -= take;
      }
    }
    return pieces;
  }

  /** The base member the most bytes of `pieces` were copied from, if any. */
  dominantMember(pieces: Piece[]): BaseMember | undefined {
    const bytes = new Map<BaseMember['entry'], { member: BaseMember; n: number }>();
    for (const piece of pieces) {
      if (piece.kind !== 'copy') continue;
      const entry = this.entryAt(piece.base, piece.offset);
      if (!entry || entry.size === 0) continue;
      const seen = bytes.get(entry) ?? { member: { base: piece.base, entry }, n: 0 };
      seen.n += piece.length;
      bytes.set(entry, seen);
    }
    let best: { member: BaseMember; n: number } | undefined;
    for (const candidate of bytes.values()) if (!best || candidate.n > best.n) best = candidate;
    return best?.member;
  }

  private baseAt(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
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
