/** A bsdiff-style patch: `(add, extra, seek)` controls, add bytes as differences, extra bytes. */
export interface CoverPatch {
  /** Flat (add, extra, seek) triples. */
  controls: number[];
  diff: Buffer;
  extra: Buffer;
}

export interface CoverSearchOptions {
  /**
   * Candidates tried per lookup, newest first (zlib's `max_chain`): more find longer matches in
   * repetitive data, at more time per target byte.
   * @defaultValue 16
   */
  maxChain?: number;
  /**
   * Old positions indexed: every `step`-th (matches of at least 8 + step - 1 bytes are still
   * found); 2 halves the index and its build time for a slightly larger patch.
   * @defaultValue 1
   */
  step?: number;
}

/** Bytes hashed per lookup: the shortest exact match the search can start a cover from. */
const K = 8;
/** Bytes a new cover may reach back into the previous one once `diff`'s re-scan budget is spent. */
const MAX_OVERLAP = 4096;
/** Bytes of previous covers `diff` may re-scan per new byte before capping overlaps. */
const RESCAN_PER_BYTE = 16;
/** Longest pattern (in indexed positions) whose repeats are left out of the index. */
const PERIOD = 8;

/** Four bytes at `p`, little-endian, as a signed 32-bit integer. */
function word(buf: Uint8Array, p: number): number {
  return buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24);
}

/**
 * bsdiff's cover search (Colin Percival's greedy scan with approximate extension), with a hash
 * chain over every position of the old bytes in place of bsdiff's suffix array: built in one
 * pass instead of a suffix sort, so a 16 MiB old range is indexed in a fraction of a second and
 * searched in-process. A lookup finds the longest of the `maxChain` newest old positions
 * sharing the target's next 8 bytes, not the longest match anywhere, which costs little on the
 * data bsdiff is for (adjacent builds of the same code, where the right alignment is found by
 * any long exact match and kept while it keeps matching).
 *
 * Memory (`CoverIndex.cost`): the old bytes, plus 4 bytes per indexed position (chain) and 4 per
 * hash slot (about one per indexed position, at most 2^24).
 */
export class CoverIndex {
  private readonly head: Int32Array;
  private readonly prev: Int32Array;
  private readonly shift: number;
  private readonly maxChain: number;
  private readonly step: number;

  constructor(
    readonly old: Uint8Array,
    options: CoverSearchOptions = {},
  ) {
    this.maxChain = Math.max(1, options.maxChain ?? 16);
    const step = (this.step = Math.max(1, options.step ?? 1));
    let bits = 12;
    while (1 << bits < old.length / step && bits < 24) bits++;
    this.shift = 32 - bits;
    this.head = new Int32Array(1 << bits).fill(-1);
    this.prev = new Int32Array(Math.max(0, Math.ceil((old.length - K + 1) / step)));
    const { head, prev } = this;
    // The last PERIOD windows indexed, to skip a window equal to one of them (see below).
    const recentLo = new Int32Array(PERIOD);
    const recentHi = new Int32Array(PERIOD);
    for (let p = 0, q = 0; p + K <= old.length; p += step, q++) {
      const lo = word(old, p);
      const hi = word(old, p + 4);
      // Inside a run of one byte or of a short pattern (zeros, padding, arrays of one value) only
      // the run's first windows are indexed: a lookup then lands on the run's start and matches
      // the whole run, where the newest positions (the run's end) would each match a few bytes
      // and a long run would cost `maxChain` short compares per few bytes of target.
      let repeated = false;
      for (let d = 1; d <= PERIOD && d <= q; d++) {
        const r = (q - d) % PERIOD;
        if (recentLo[r] === lo && recentHi[r] === hi) {
          repeated = true;
          break;
        }
      }
      recentLo[q % PERIOD] = lo;
      recentHi[q % PERIOD] = hi;
      prev[q] = -1;
      if (repeated) continue;
      const h = this.slot(lo, hi);
      prev[q] = head[h]!;
      head[h] = q;
    }
  }

  /** Bytes an index of `oldLength` old bytes holds, the old bytes included. */
  static cost(oldLength: number, step = 1): number {
    const positions = Math.ceil(oldLength / step);
    let slots = 1 << 12;
    while (slots < positions && slots < 1 << 24) slots *= 2;
    return oldLength + 4 * positions + 4 * slots;
  }

  private slot(lo: number, hi: number): number {
    return (Math.imul(lo, 0x9e3779b1) ^ Math.imul(hi ^ (lo >>> 15), 0x85ebca77)) >>> this.shift;
  }

  /**
   * The longest exact match of `neu` at `scan` among the chain's candidates: `length` 0 when
   * none shares 8 bytes. Writes into `found` to avoid an allocation per target byte.
   */
  private longest(neu: Uint8Array, scan: number, found: { pos: number; length: number }): void {
    found.length = 0;
    found.pos = 0;
    if (scan + K > neu.length) return;
    const { old, prev } = this;
    const most = neu.length - scan;
    const step = this.step;
    let q = this.head[this.slot(word(neu, scan), word(neu, scan + 4))]!;
    let best = 0;
    for (let tries = this.maxChain; q >= 0 && tries > 0; tries--, q = prev[q]!) {
      const candidate = q * step;
      const limit = Math.min(most, old.length - candidate);
      // zlib's trick: a candidate that cannot beat the best so far fails on its last byte.
      if (limit <= best || old[candidate + best] !== neu[scan + best]) continue;
      let n = 0;
      while (n < limit && old[candidate + n] === neu[scan + n]) n++;
      if (n > best) {
        best = n;
        found.pos = candidate;
        // Nothing beats a match reaching the end of the new bytes.
        if (n === most) break;
      }
    }
    found.length = best;
  }

  /**
   * A patch turning the old bytes into `neu`, as bsdiff would write it: `(add, extra, seek)`
   * controls, the add bytes as differences from the old bytes, the extra bytes as they are.
   */
  diff(neu: Uint8Array): CoverPatch {
    const { old } = this;
    const oldSize = old.length;
    const newSize = neu.length;
    const controls: number[] = [];
    const diffParts: Buffer[] = [];
    const extraParts: Buffer[] = [];
    const found = { pos: 0, length: 0 };
    let scan = 0;
    let len = 0;
    let pos = 0;
    let lastScan = 0;
    let lastPos = 0;
    let lastOffset = 0;
    let rescan = RESCAN_PER_BYTE * newSize + MAX_OVERLAP;
    while (scan < newSize) {
      let oldScore = 0;
      // Move on until the match found beats the current alignment by 8 bytes, or is that alignment.
      for (let scsc = (scan += len); scan < newSize; scan++) {
        this.longest(neu, scan, found);
        len = found.length;
        pos = found.pos;
        for (; scsc < scan + len; scsc++) {
          const at = scsc + lastOffset;
          if (at >= 0 && at < oldSize && old[at] === neu[scsc]) oldScore++;
        }
        if ((len === oldScore && len !== 0) || len > oldScore + 8) break;
        const at = scan + lastOffset;
        if (at >= 0 && at < oldSize && old[at] === neu[scan]) oldScore--;
      }
      if (len === oldScore && scan !== newSize) continue;

      // Extend the previous cover forward while at least half its bytes match.
      let lenF = 0;
      for (let i = 0, s = 0, best = 0; lastScan + i < scan && lastPos + i < oldSize;) {
        if (old[lastPos + i] === neu[lastScan + i]) s++;
        i++;
        if (s * 2 - i > best * 2 - lenF) {
          best = s;
          lenF = i;
        }
      }
      // Extend the new cover backward the same way, into the previous one as far as bsdiff would
      // while the bytes re-scanned so far stay within `rescan` (a few times the new bytes), then
      // by at most MAX_OVERLAP: in long runs (zeros, padding) a hash chain's matches are shorter
      // than a suffix array's, covers come every few bytes, and unbounded overlaps re-scan the
      // whole run at each of them (quadratic in the run). Real data rarely needs the budget
      // (next-swc, one 8 MiB window: 749 kB patch with it, 842 kB capped from the start).
      let lenB = 0;
      if (scan < newSize) {
        const gap = scan - lastScan;
        const reach = rescan > 0 ? gap : Math.min(gap, gap - lenF + MAX_OVERLAP);
        let i = 1;
        for (let s = 0, best = 0; i <= reach && pos >= i; i++) {
          if (old[pos - i] === neu[scan - i]) s++;
          if (s * 2 - i > best * 2 - lenB) {
            best = s;
            lenB = i;
          }
        }
        rescan -= Math.max(0, i - 1 - (gap - lenF));
      }
      // Where the two overlap, split at the point that keeps the most matching bytes.
      if (lastScan + lenF > scan - lenB) {
        const overlap = lastScan + lenF - (scan - lenB);
        let s = 0;
        let best = 0;
        let lens = 0;
        for (let i = 0; i < overlap; i++) {
          if (neu[lastScan + lenF - overlap + i] === old[lastPos + lenF - overlap + i]) s++;
          if (neu[scan - lenB + i] === old[pos - lenB + i]) s--;
          if (s > best) {
            best = s;
            lens = i + 1;
          }
        }
        lenF += lens - overlap;
        lenB -= lens;
      }

      const diff = Buffer.allocUnsafe(lenF);
      for (let i = 0; i < lenF; i++) diff[i] = (neu[lastScan + i]! - old[lastPos + i]!) & 0xff;
      diffParts.push(diff);
      const extraLength = scan - lenB - (lastScan + lenF);
      extraParts.push(Buffer.from(neu.buffer, neu.byteOffset + lastScan + lenF, extraLength));
      controls.push(lenF, extraLength, pos - lenB - (lastPos + lenF));

      lastScan = scan - lenB;
      lastPos = pos - lenB;
      lastOffset = pos - scan;
    }
    return { controls, diff: Buffer.concat(diffParts), extra: Buffer.concat(extraParts) };
  }
}

/** bsdiff-style patch of `neu` against `old` by a one-off CoverIndex. */
export function coverDiff(old: Uint8Array, neu: Uint8Array, options: CoverSearchOptions = {}): CoverPatch {
  return new CoverIndex(old, options).diff(neu);
}
