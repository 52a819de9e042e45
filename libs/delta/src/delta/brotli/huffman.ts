import type { BitReader } from './bit-reader';
import { BrotliFormatError } from './brotli-error';

/**
 * Canonical prefix codes (RFC 7932 §3) as two-level lookup tables: an 8-bit root table whose
 * entries are either a symbol (code length << 16 | symbol) or a pointer to a second-level table
 * for longer codes. A table never exceeds 256 + 256 × 128 entries (15-bit codes at most).
 */
export const ROOT_BITS = 8;
const MAX_LENGTH = 15;
export const MAX_TABLE_SIZE = (1 << ROOT_BITS) + (1 << ROOT_BITS) * (1 << (MAX_LENGTH - ROOT_BITS));

/** The next key of `length` bits in bit-reversed order. */
function nextKey(key: number, length: number): number {
  let step = 1 << (length - 1);
  while (key & step) step >>= 1;
  return (key & (step - 1)) + step;
}

function replicate(table: Int32Array, at: number, step: number, end: number, code: number): void {
  do {
    end -= step;
    table[at + end] = code;
  } while (end > 0);
}

/** Size of the second-level table that starts with codes of `length` bits. */
function nextTableBits(count: Int32Array, length: number, rootBits: number): number {
  let left = 1 << (length - rootBits);
  while (length < MAX_LENGTH) {
    left -= count[length]!;
    if (left <= 0) break;
    length++;
    left <<= 1;
  }
  return length - rootBits;
}

const count = new Int32Array(MAX_LENGTH + 1);
const offset = new Int32Array(MAX_LENGTH + 1);
const sorted = new Int32Array(1 << 11);

/**
 * Builds the table of a complete code from the code lengths of `size` symbols into `table` at
 * `at`; returns the entries used. The caller has checked that the lengths form a complete code
 * (or name a single symbol, which then takes zero bits).
 */
export function buildTable(
  table: Int32Array,
  at: number,
  rootBits: number,
  lengths: Uint8Array,
  size: number,
): number {
  count.fill(0);
  for (let s = 0; s < size; s++) count[lengths[s]!]!++;
  offset[1] = 0;
  for (let len = 1; len < MAX_LENGTH; len++) offset[len + 1] = offset[len]! + count[len]!;
  for (let s = 0; s < size; s++) if (lengths[s] !== 0) sorted[offset[lengths[s]!]!++] = s;

  let tableBits = rootBits;
  let tableSize = 1 << tableBits;
  let total = tableSize;
  if (offset[MAX_LENGTH] === 1) {
    // One symbol: it takes no bits.
    for (let k = 0; k < total; k++) table[at + k] = sorted[0]!;
    return total;
  }
  let key = 0;
  let symbol = 0;
  for (let len = 1, step = 2; len <= rootBits; len++, step <<= 1) {
    for (; count[len]! > 0; count[len]!--) {
      replicate(table, at + key, step, tableSize, (len << 16) | sorted[symbol++]!);
      key = nextKey(key, len);
    }
  }
  const mask = total - 1;
  let low = -1;
  let current = at;
  for (let len = rootBits + 1, step = 2; len <= MAX_LENGTH; len++, step <<= 1) {
    for (; count[len]! > 0; count[len]!--) {
      if ((key & mask) !== low) {
        current += tableSize;
        tableBits = nextTableBits(count, len, rootBits);
        tableSize = 1 << tableBits;
        total += tableSize;
        low = key & mask;
        table[at + low] = ((tableBits + rootBits) << 16) | (current - at - low);
      }
      replicate(
        table,
        current + (key >> rootBits),
        step,
        tableSize,
        ((len - rootBits) << 16) | sorted[symbol++]!,
      );
      key = nextKey(key, len);
    }
  }
  return total;
}

/** Order in which code length code lengths are sent (RFC 7932 §3.5). */
const CODE_LENGTH_ORDER = [1, 2, 3, 4, 0, 5, 17, 6, 16, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/** The fixed code of code length code lengths, indexed by the next 4 bits: length and value. */
const CLCL_BITS = [2, 2, 2, 3, 2, 2, 2, 4, 2, 2, 2, 3, 2, 2, 2, 4];
const CLCL_VALUE = [0, 4, 3, 2, 0, 4, 3, 1, 0, 4, 3, 2, 0, 4, 3, 5];
const CODE_LENGTH_CODES = 18;

const lengths = new Uint8Array(1 << 11);
const codeLengthLengths = new Uint8Array(CODE_LENGTH_CODES);
const codeLengthTable = new Int32Array(1 << 5);

/**
 * Reads a prefix code for an alphabet of `alphabetSize` symbols (RFC 7932 §3.4, §3.5) into
 * `table` at `at`; returns the entries used. Incomplete or oversubscribed codes, repeated simple
 * symbols and symbols outside the alphabet are format errors.
 */
export function readPrefixCode(br: BitReader, alphabetSize: number, table: Int32Array, at: number): number {
  const hskip = br.read(2);
  lengths.fill(0, 0, alphabetSize);
  if (hskip === 1) {
    const symbolBits = 32 - Math.clz32(alphabetSize - 1);
    const nsym = br.read(2) + 1;
    const symbols = [0, 0, 0, 0];
    for (let i = 0; i < nsym; i++) {
      const s = br.read(symbolBits);
      if (s >= alphabetSize) throw new BrotliFormatError('simple prefix code symbol outside the alphabet');
      for (let j = 0; j < i; j++)
        if (symbols[j] === s) throw new BrotliFormatError('simple prefix code repeats a symbol');
      symbols[i] = s;
    }
    if (nsym === 1) lengths[symbols[0]!] = 1;
    else if (nsym === 2) lengths[symbols[0]!] = lengths[symbols[1]!] = 1;
    else if (nsym === 3) {
      lengths[symbols[0]!] = 1;
      lengths[symbols[1]!] = lengths[symbols[2]!] = 2;
    } else if (br.read(1) === 0) {
      for (const s of symbols) lengths[s] = 2;
    } else {
      lengths[symbols[0]!] = 1;
      lengths[symbols[1]!] = 2;
      lengths[symbols[2]!] = lengths[symbols[3]!] = 3;
    }
    return buildTable(table, at, ROOT_BITS, lengths, alphabetSize);
  }

  codeLengthLengths.fill(0);
  let space = 32;
  let codes = 0;
  for (let i = hskip; i < CODE_LENGTH_CODES; i++) {
    const peek = br.peek15() & 15;
    br.skip(CLCL_BITS[peek]!);
    const v = CLCL_VALUE[peek]!;
    codeLengthLengths[CODE_LENGTH_ORDER[i]!] = v;
    if (v !== 0) {
      space -= 32 >> v;
      codes++;
      if (space <= 0) break;
    }
  }
  if (!(codes === 1 || space === 0)) throw new BrotliFormatError('invalid code length code');
  buildTable(codeLengthTable, 0, 5, codeLengthLengths, CODE_LENGTH_CODES);

  let symbol = 0;
  let previous = 8;
  let repeat = 0;
  let repeatLength = 0;
  space = 1 << 15;
  while (symbol < alphabetSize && space > 0) {
    const entry = codeLengthTable[br.peek15() & 31]!;
    br.skip(entry >> 16);
    const code = entry & 0xffff;
    if (code < 16) {
      repeat = 0;
      lengths[symbol++] = code;
      if (code !== 0) {
        previous = code;
        space -= (1 << 15) >> code;
      }
      continue;
    }
    const extraBits = code === 16 ? 2 : 3;
    const newLength = code === 16 ? previous : 0;
    if (repeatLength !== newLength) {
      repeat = 0;
      repeatLength = newLength;
    }
    const old = repeat;
    if (repeat > 0) repeat = (repeat - 2) << extraBits;
    repeat += br.read(extraBits) + 3;
    const delta = repeat - old;
    if (symbol + delta > alphabetSize) throw new BrotliFormatError('code lengths repeat past the alphabet');
    lengths.fill(repeatLength, symbol, symbol + delta);
    symbol += delta;
    if (repeatLength !== 0) space -= delta << (15 - repeatLength);
  }
  if (space !== 0) throw new BrotliFormatError('incomplete or oversubscribed prefix code');
  return buildTable(table, at, ROOT_BITS, lengths, alphabetSize);
}
