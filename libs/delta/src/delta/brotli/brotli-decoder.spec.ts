import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

import { BrotliDecoder } from './brotli-decoder';
import { BrotliFormatError } from './brotli-error';
import {
  DICTIONARY_SIZE,
  MAX_WORD_LENGTH,
  MIN_WORD_LENGTH,
  staticDictionary,
  TRANSFORM_COUNT,
  transformWord,
  WORD_COUNT_BITS,
} from './dictionary';

/** Decodes `stream` with Ferry's decoder, the source handing out `step` bytes at a time. */
function decode(stream: Buffer, maxOutput: number, step = 1 << 14, maxWindowBits = 24): Buffer {
  let at = 0;
  const decoder = new BrotliDecoder(
    (into) => {
      const n = Math.min(into.length, stream.length - at, step);
      into.set(stream.subarray(at, at + n));
      at += n;
      return n;
    },
    { maxWindowBits, maxOutput },
  );
  const parts: Buffer[] = [];
  for (let chunk = decoder.pull(); chunk; chunk = decoder.pull()) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

function compress(
  data: Buffer,
  quality: number,
  windowBits: number,
  mode = constants.BROTLI_MODE_GENERIC,
): Buffer {
  return brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: quality,
      [constants.BROTLI_PARAM_LGWIN]: windowBits,
      [constants.BROTLI_PARAM_MODE]: mode,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
}

/** A deterministic pseudo-random generator (tests must be reproducible). */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

const root = join(__dirname, '..', '..', '..', '..', '..');
const rnd = random(7);
const SAMPLES: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['TypeScript source', readFileSync(join(root, 'libs', 'delta', 'src', 'delta', 'decoder.ts'))],
  ['Markdown with UTF-8', readFileSync(join(root, 'docs', 'delta-format.md'))],
  ['random bytes', Buffer.from(Array.from({ length: 70_000 }, () => Math.floor(rnd() * 256)))],
  ['zeros', Buffer.alloc(200_000)],
  ['machine code', readFileSync(process.execPath).subarray(1 << 20, (1 << 20) + 200_000)],
  [
    'varints like a field stream',
    Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i % 3 === 0 ? 0x80 | (i & 0x7f) : (i * 7) & 0x3f))),
  ],
];

describe('BrotliDecoder (RFC 7932, TypeScript)', () => {
  it('decodes what Node’s native brotli encodes, at every quality, window and mode, fed in odd pieces', () => {
    let checked = 0;
    for (const [name, data] of SAMPLES) {
      for (const quality of [0, 5, 9, 11]) {
        for (const windowBits of [10, 16, 22]) {
          for (const mode of [constants.BROTLI_MODE_GENERIC, constants.BROTLI_MODE_TEXT]) {
            if (quality === 11 && windowBits !== 22 && (data.length > 100_000 || windowBits !== 16)) continue;
            const stream = compress(data, quality, windowBits, mode);
            const step = [1, 7, 4096, 1 << 16][checked % 4]!;
            const out = decode(stream, data.length, step);
            expect({ name, quality, windowBits, mode, same: out.equals(data) }).toEqual({
              name,
              quality,
              windowBits,
              mode,
              same: true,
            });
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(150);
  });

  it('hands out the output in views of a ring buffer no larger than the output needs', () => {
    const data = SAMPLES[6]![1];
    const stream = compress(data, 5, 24);
    let at = 0;
    const decoder = new BrotliDecoder(
      (into) => {
        const n = Math.min(into.length, stream.length - at);
        into.set(stream.subarray(at, at + n));
        at += n;
        return n;
      },
      { maxWindowBits: 24, maxOutput: data.length },
    );
    const hash = createHash('sha256');
    let largest = 0;
    for (let chunk = decoder.pull(); chunk; chunk = decoder.pull()) {
      largest = Math.max(largest, chunk.length);
      expect(chunk.buffer.byteLength).toBeLessThanOrEqual(1 << 19);
      hash.update(chunk);
    }
    expect(largest).toBeLessThanOrEqual(1 << 16);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('refuses a stream that decodes to more than its declared size, before writing past it', () => {
    const data = SAMPLES[2]![1];
    expect(() => decode(compress(data, 11, 22), data.length - 1)).toThrow(/more bytes than declared/);
  });

  it('refuses windows over its cap and large-window streams', () => {
    const data = SAMPLES[2]![1];
    expect(() => decode(compress(data, 5, 22), data.length, 1 << 14, 18)).toThrow(
      /window of 2\^22 bytes exceeds 2\^18/,
    );
    const large = brotliCompressSync(data, {
      params: { [constants.BROTLI_PARAM_LARGE_WINDOW]: 1, [constants.BROTLI_PARAM_LGWIN]: 26 },
    });
    expect(() => decode(large, data.length)).toThrow(/large-window/);
  });

  it('refuses every truncation of a stream and bytes after its end', () => {
    const data = SAMPLES[3]![1].subarray(0, 3000);
    const stream = compress(data, 11, 16);
    for (let cut = 0; cut < stream.length; cut++) {
      expect(() => decode(stream.subarray(0, cut), data.length)).toThrow(BrotliFormatError);
    }
    expect(() => decode(Buffer.concat([stream, Buffer.from([0])]), data.length)).toThrow(/follow the end/);
  });

  it('agrees with the native decoder on thousands of corrupted streams, or refuses them', () => {
    const next = random(2026);
    const streams = [
      compress(SAMPLES[2]![1].subarray(0, 6000), 11, 16, constants.BROTLI_MODE_TEXT),
      compress(SAMPLES[6]![1].subarray(0, 6000), 9, 18),
      compress(SAMPLES[7]![1].subarray(0, 6000), 5, 16),
      compress(SAMPLES[3]![1].subarray(0, 4000), 2, 10),
    ];
    let refused = 0;
    let decoded = 0;
    for (let i = 0; i < 3000; i++) {
      const stream = Buffer.from(streams[i % streams.length]!);
      const flips = 1 + Math.floor(next() * 3);
      for (let f = 0; f < flips; f++) {
        // Headers and prefix codes sit at the start: corrupt there more often.
        const at = Math.floor((next() < 0.7 ? Math.min(64, stream.length) : stream.length) * next());
        stream[at] = stream[at]! ^ (1 << Math.floor(next() * 8));
      }
      let ours: Buffer;
      try {
        ours = decode(stream, 1 << 20, 1 + (i % 300));
      } catch (err) {
        expect(err).toBeInstanceOf(BrotliFormatError);
        refused++;
        continue;
      }
      // What Ferry's decoder accepts is a valid stream: the native decoder must read the same bytes.
      expect(brotliDecompressSync(stream).equals(ours)).toBe(true);
      decoded++;
    }
    expect(refused).toBeGreaterThan(100);
    expect(decoded + refused).toBe(3000);
  });

  it('holds the RFC’s static dictionary', () => {
    const dictionary = staticDictionary();
    expect(dictionary.length).toBe(DICTIONARY_SIZE);
    expect(createHash('sha256').update(dictionary).digest('hex')).toBe(
      '20e42eb1b511c21806d4d227d07e5dd06877d8ce7b3a817f378f313653f35c70',
    );
  });

  it('rebuilds every dictionary word transform as the native decoder does (crafted streams)', () => {
    const next = random(99);
    let checked = 0;
    for (let transform = 0; transform < TRANSFORM_COUNT; transform++) {
      for (let length = MIN_WORD_LENGTH; length <= MAX_WORD_LENGTH; length += 1 + (transform % 3)) {
        const index = Math.floor(next() * (1 << WORD_COUNT_BITS[length]!));
        // The meta-block is as long as the transformed word says it is; the native decoder
        // refuses any other length, so a wrong length here fails the test too.
        const mlen = transformWord(new Uint8Array(64), 0, length, index, transform);
        const stream = dictionaryWordStream(length, index, transform, Math.max(mlen, 1));
        if (mlen === 0) {
          // Transforms that omit the whole word write nothing: no meta-block can hold just that.
          expect(() => brotliDecompressSync(stream)).toThrow();
          expect(() => decode(stream, 64)).toThrow(BrotliFormatError);
          continue;
        }
        const expected = brotliDecompressSync(stream);
        expect(expected.length).toBe(mlen);
        expect(decode(stream, 64)).toEqual(expected);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(121 * 7);
  });
});

/** Writes bits least significant first. */
class BitWriter {
  private readonly bytes: number[] = [];
  private bit = 0;
  write(value: number, count: number): this {
    for (let i = 0; i < count; i++) {
      if (this.bit === 0) this.bytes.push(0);
      if ((value >> i) & 1) this.bytes[this.bytes.length - 1]! |= 1 << this.bit;
      this.bit = (this.bit + 1) & 7;
    }
    return this;
  }
  finish(): Buffer {
    return Buffer.from(this.bytes);
  }
}

const COPY_BASE = [2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 18, 22, 30, 38, 54];
const COPY_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4];

/**
 * A one-command brotli stream: no literals, a copy of `length` bytes at a distance beyond the
 * window, so dictionary word `index` of that length under `transform`, in one last meta-block
 * of `mlen` bytes. Every prefix code is a one-symbol simple code (zero bits per symbol).
 */
function dictionaryWordStream(length: number, index: number, transform: number, mlen: number): Buffer {
  const w = new BitWriter();
  w.write(0, 1); // window 2^16
  w.write(1, 1).write(0, 1); // ISLAST, not empty
  w.write(0, 2).write(mlen - 1, 16); // 4 nibbles of MLEN - 1
  w.write(0, 1).write(0, 1).write(0, 1); // one block type per category
  w.write(0, 2).write(0, 4); // NPOSTFIX, NDIRECT
  w.write(0, 2); // literal context mode
  w.write(0, 1).write(0, 1); // one literal tree, one distance tree
  const simple = (symbol: number, bits: number) => w.write(1, 2).write(0, 2).write(symbol, bits);
  simple(0x78, 8); // literals: 'x' (never used)
  const copyCode = COPY_BASE.findIndex((base, i) => length >= base && length < base + (1 << COPY_EXTRA[i]!));
  // Insert code 0, explicit distance: command codes 128–191 hold copy codes 0–7, 192–255 codes 8–15.
  simple(copyCode < 8 ? 128 + copyCode : 192 + copyCode - 8, 10);
  // Distance: window empty (max distance 0), so distance - 1 is the word id.
  const id = (transform << WORD_COUNT_BITS[length]!) + index;
  let code = 0;
  let bits = 0;
  let offset = 0;
  for (; ; code++) {
    bits = 1 + (code >> 1);
    offset = ((2 + (code & 1)) << bits) - 4;
    if (id >= offset && id < offset + (1 << bits)) break;
  }
  simple(16 + code, 6);
  w.write(COPY_EXTRA[copyCode] ? length - COPY_BASE[copyCode]! : 0, COPY_EXTRA[copyCode]!);
  w.write(id - offset, bits);
  return w.finish();
}
