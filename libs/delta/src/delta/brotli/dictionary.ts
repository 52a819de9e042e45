import { inflateSync } from 'node:zlib';

import { DICTIONARY_DEFLATED_BASE64 } from './dictionary-data';

/** log2 of the number of words of each length 0–24 (RFC 7932 §8); 0 where there are none. */
export const WORD_COUNT_BITS = [
  0, 0, 0, 0, 10, 10, 11, 11, 10, 10, 10, 10, 10, 9, 9, 8, 7, 7, 8, 7, 7, 6, 6, 5, 5,
];
export const MIN_WORD_LENGTH = 4;
export const MAX_WORD_LENGTH = 24;

/** Where the words of each length start in the dictionary. */
export const WORD_OFFSETS: number[] = [];
for (let length = 0, at = 0; length <= MAX_WORD_LENGTH; length++) {
  WORD_OFFSETS.push(at);
  if (WORD_COUNT_BITS[length]! > 0) at += length << WORD_COUNT_BITS[length]!;
}
export const DICTIONARY_SIZE = 122_784;

let dictionary: Buffer | undefined;

/** The static dictionary, inflated on first use (most delta sections never refer to it). */
export function staticDictionary(): Buffer {
  dictionary ??= inflateSync(Buffer.from(DICTIONARY_DEFLATED_BASE64, 'base64'));
  return dictionary;
}

/** Transform kinds (RFC 7932 §8): 0 identity, 1–9 omit the last n bytes, then these, then 12–20 omit the first 1–9. */
const UPPERCASE_FIRST = 10;
const UPPERCASE_ALL = 11;
const OMIT_FIRST_1 = 12;

/** The 121 word transforms of RFC 7932 Appendix B: prefix, kind, suffix. */
const TRANSFORM_TABLE: [string, number, string][] = [
  ['', 0, ''],
  ['', 0, ' '],
  [' ', 0, ' '],
  ['', 12, ''],
  ['', 10, ' '],
  ['', 0, ' the '],
  [' ', 0, ''],
  ['s ', 0, ' '],
  ['', 0, ' of '],
  ['', 10, ''],
  ['', 0, ' and '],
  ['', 13, ''],
  ['', 1, ''],
  [', ', 0, ' '],
  ['', 0, ', '],
  [' ', 10, ' '],
  ['', 0, ' in '],
  ['', 0, ' to '],
  ['e ', 0, ' '],
  ['', 0, '"'],
  ['', 0, '.'],
  ['', 0, '">'],
  ['', 0, '\n'],
  ['', 3, ''],
  ['', 0, ']'],
  ['', 0, ' for '],
  ['', 14, ''],
  ['', 2, ''],
  ['', 0, ' a '],
  ['', 0, ' that '],
  [' ', 10, ''],
  ['', 0, '. '],
  ['.', 0, ''],
  [' ', 0, ', '],
  ['', 15, ''],
  ['', 0, ' with '],
  ['', 0, "'"],
  ['', 0, ' from '],
  ['', 0, ' by '],
  ['', 16, ''],
  ['', 17, ''],
  [' the ', 0, ''],
  ['', 4, ''],
  ['', 0, '. The '],
  ['', 11, ''],
  ['', 0, ' on '],
  ['', 0, ' as '],
  ['', 0, ' is '],
  ['', 7, ''],
  ['', 1, 'ing '],
  ['', 0, '\n\t'],
  ['', 0, ':'],
  [' ', 0, '. '],
  ['', 0, 'ed '],
  ['', 20, ''],
  ['', 18, ''],
  ['', 6, ''],
  ['', 0, '('],
  ['', 10, ', '],
  ['', 8, ''],
  ['', 0, ' at '],
  ['', 0, 'ly '],
  [' the ', 0, ' of '],
  ['', 5, ''],
  ['', 9, ''],
  [' ', 10, ', '],
  ['', 10, '"'],
  ['.', 0, '('],
  ['', 11, ' '],
  ['', 10, '">'],
  ['', 0, '="'],
  [' ', 0, '.'],
  ['.com/', 0, ''],
  [' the ', 0, ' of the '],
  ['', 10, "'"],
  ['', 0, '. This '],
  ['', 0, ','],
  ['.', 0, ' '],
  ['', 10, '('],
  ['', 10, '.'],
  ['', 0, ' not '],
  [' ', 0, '="'],
  ['', 0, 'er '],
  [' ', 11, ' '],
  ['', 0, 'al '],
  [' ', 11, ''],
  ['', 0, "='"],
  ['', 11, '"'],
  ['', 10, '. '],
  [' ', 0, '('],
  ['', 0, 'ful '],
  [' ', 10, '. '],
  ['', 0, 'ive '],
  ['', 0, 'less '],
  ['', 11, "'"],
  ['', 0, 'est '],
  [' ', 10, '.'],
  ['', 11, '">'],
  [' ', 0, "='"],
  ['', 10, ','],
  ['', 0, 'ize '],
  ['', 11, '.'],
  ['\u00a0', 0, ''],
  [' ', 0, ','],
  ['', 10, '="'],
  ['', 11, '="'],
  ['', 0, 'ous '],
  ['', 11, ', '],
  ['', 10, "='"],
  [' ', 10, ','],
  [' ', 11, '="'],
  [' ', 11, ', '],
  ['', 11, ','],
  ['', 11, '('],
  ['', 11, '. '],
  [' ', 11, '.'],
  ['', 11, "='"],
  [' ', 11, '. '],
  [' ', 10, '="'],
  [' ', 11, "='"],
  [' ', 10, "='"],
];

interface Transform {
  prefix: Buffer;
  kind: number;
  suffix: Buffer;
}
const TRANSFORMS: Transform[] = TRANSFORM_TABLE.map(([prefix, kind, suffix]) => ({
  prefix: Buffer.from(prefix, 'utf8'),
  kind,
  suffix: Buffer.from(suffix, 'utf8'),
}));
export const TRANSFORM_COUNT = TRANSFORMS.length;

/** RFC 7932 §8's ToUpperCase on `word[at…end)`: the bytes it stepped over. */
function toUpperCase(word: Uint8Array, at: number, end: number): number {
  const c = word[at]!;
  if (c < 0xc0) {
    if (c >= 0x61 && c <= 0x7a) word[at] = c ^ 32;
    return 1;
  }
  // A change past the word's end is dropped with the bytes it lands in, as in the reference decoder.
  if (c < 0xe0) {
    if (at + 1 < end) word[at + 1] = word[at + 1]! ^ 32;
    return 2;
  }
  if (at + 2 < end) word[at + 2] = word[at + 2]! ^ 5;
  return 3;
}

/**
 * Writes dictionary word `index` of `length` bytes, transformed by `transform`, into `out` at
 * `at`; returns the bytes written (at most `length` + 13). `out` must have that room.
 */
export function transformWord(
  out: Uint8Array,
  at: number,
  length: number,
  index: number,
  transform: number,
): number {
  const t = TRANSFORMS[transform]!;
  let start = WORD_OFFSETS[length]! + index * length;
  let size = length;
  if (t.kind >= OMIT_FIRST_1) {
    const skip = Math.min(t.kind - OMIT_FIRST_1 + 1, size);
    start += skip;
    size -= skip;
  } else if (t.kind >= 1 && t.kind <= 9) size = Math.max(0, size - t.kind);
  let o = at;
  out.set(t.prefix, o);
  o += t.prefix.length;
  const word = o;
  out.set(staticDictionary().subarray(start, start + size), o);
  o += size;
  if (t.kind === UPPERCASE_FIRST && size > 0) toUpperCase(out, word, o);
  else if (t.kind === UPPERCASE_ALL) for (let i = word; i < o;) i += toUpperCase(out, i, o);
  out.set(t.suffix, o);
  return o + t.suffix.length - at;
}
