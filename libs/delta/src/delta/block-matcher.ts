/** A run of target bytes: copied from the reference at `refOffset`, or (refOffset -1) new. */
export interface MatchRun {
  refOffset: number;
  targetOffset: number;
  length: number;
}

export interface BlockMatcherOptions {
  /**
   * Bytes hashed per lookup; matches shorter than window + step - 1 may be missed.
   * @defaultValue 16
   */
  window?: number;
  /**
   * Upper bound on hash-table slots (memory is 4 bytes per slot); the sampling step of the
   * reference grows so that the table stays under it.
   * @defaultValue 1 << 24
   */
  maxSlots?: number;
  /**
   * Shortest copy worth an operation.
   * @defaultValue 24
   */
  minMatch?: number;
}

const PRIME = 0x01000193;

function powMod(base: number, exp: number): number {
  let result = 1;
  for (let i = 0; i < exp; i++) result = Math.imul(result, base);
  return result;
}

function hashAt(buf: Uint8Array, at: number, window: number): number {
  let h = 0;
  for (let i = 0; i < window; i++) h = (Math.imul(h, PRIME) + buf[at + i]!) | 0;
  return h;
}

/**
 * A hash index of a reference, built once and queried for many targets: the reference is
 * sampled every `step` bytes into a hash table, like zstd's --patch-from.
 */
export class BlockIndex {
  private readonly window: number;
  private readonly minMatch: number;
  private readonly table: Int32Array;
  private readonly shift: number;

  constructor(
    readonly ref: Uint8Array,
    options: BlockMatcherOptions = {},
  ) {
    this.window = options.window ?? 16;
    this.minMatch = Math.max(this.window, options.minMatch ?? 24);
    const maxSlots = options.maxSlots ?? 1 << 24;
    let step = 8;
    while (ref.length / step > maxSlots / 2) step *= 2;
    let bits = 10;
    while (1 << bits < (ref.length / step) * 2 && 1 << bits < maxSlots) bits++;
    this.table = new Int32Array(1 << bits);
    this.shift = 32 - bits;
    for (let p = 0; p + this.window <= ref.length; p += step)
      this.table[this.slot(hashAt(ref, p, this.window))] = p + 1;
  }

  /** Bytes of memory the index holds besides the reference. */
  get tableBytes(): number {
    return this.table.byteLength;
  }

  private slot(h: number): number {
    return Math.imul(h, 0x9e3779b1) >>> this.shift;
  }

  /**
   * Scans `target` with a rolling hash at every byte; each hit is verified and extended both
   * ways. Returns runs covering the whole target in order.
   */
  match(target: Uint8Array): MatchRun[] {
    const { ref, window, minMatch, table } = this;
    const runs: MatchRun[] = [];
    const pushLiteral = (from: number, to: number) => {
      if (to > from) runs.push({ refOffset: -1, targetOffset: from, length: to - from });
    };
    if (ref.length < window || target.length < window) {
      pushLiteral(0, target.length);
      return runs;
    }
    const outFactor = powMod(PRIME, window - 1);
    let literalStart = 0;
    let i = 0;
    let h = hashAt(target, 0, window);
    const last = target.length - window;
    while (i <= last) {
      const candidate = table[this.slot(h)]! - 1;
      if (candidate >= 0) {
        let forward = 0;
        const maxForward = Math.min(ref.length - candidate, target.length - i);
        while (forward < maxForward && ref[candidate + forward] === target[i + forward]) forward++;
        if (forward >= window) {
          let back = 0;
          while (
            back < candidate &&
            i - back > literalStart &&
            ref[candidate - back - 1] === target[i - back - 1]
          ) {
            back++;
          }
          if (forward + back >= minMatch) {
            pushLiteral(literalStart, i - back);
            runs.push({ refOffset: candidate - back, targetOffset: i - back, length: forward + back });
            i += forward;
            literalStart = i;
            if (i <= last) h = hashAt(target, i, window);
            continue;
          }
        }
      }
      if (i < last) h = (Math.imul(h - Math.imul(target[i]!, outFactor), PRIME) + target[i + window]!) | 0;
      i++;
    }
    pushLiteral(literalStart, target.length);
    return runs;
  }
}

/** LZ-style matching of `target` against `ref` (a one-off BlockIndex). */
export function matchBlocks(
  ref: Uint8Array,
  target: Uint8Array,
  options: BlockMatcherOptions = {},
): MatchRun[] {
  return new BlockIndex(ref, options).match(target);
}
