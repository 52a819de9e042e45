import { BitReader, type ByteSource } from './bit-reader';
import { BrotliFormatError } from './brotli-error';
import { CONTEXT_LOOKUP } from './context';
import {
  MAX_WORD_LENGTH,
  MIN_WORD_LENGTH,
  TRANSFORM_COUNT,
  transformWord,
  WORD_COUNT_BITS,
} from './dictionary';
import { MAX_TABLE_SIZE, readPrefixCode } from './huffman';

/** Insert-and-copy length codes (RFC 7932 §5): base values and extra bits. */
const INSERT_BASE = [
  0, 1, 2, 3, 4, 5, 6, 8, 10, 14, 18, 26, 34, 50, 66, 98, 130, 194, 322, 578, 1090, 2114, 6210, 22594,
];
const INSERT_EXTRA = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 12, 14, 24];
const COPY_BASE = [
  2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 18, 22, 30, 38, 54, 70, 102, 134, 198, 326, 582, 1094, 2118,
];
const COPY_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 24];
/** Which insert and copy code ranges each block of 64 command codes covers. */
const INSERT_RANGE = [0, 0, 8, 8, 0, 16, 8, 16, 16];
const COPY_RANGE = [0, 8, 0, 8, 16, 0, 16, 8, 16];
/** Block count codes (RFC 7932 §6). */
const BLOCK_LENGTH_BASE = [
  1, 5, 9, 13, 17, 25, 33, 41, 49, 65, 81, 97, 113, 145, 177, 209, 241, 305, 369, 497, 753, 1265, 2289, 4337,
  8433, 16625,
];
const BLOCK_LENGTH_EXTRA = [
  2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 7, 8, 9, 10, 11, 12, 13, 24,
];
/** Distance short codes 0–15 (RFC 7932 §4): which of the last four distances, and what to add. */
const SHORT_INDEX = [0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
const SHORT_DELTA = [0, 0, 0, 0, -1, 1, -2, 2, -3, 3, -1, 1, -2, 2, -3, 3];

const LITERAL = 0;
const COMMAND = 1;
const DISTANCE = 2;
/** A category with one block type never switches. */
const ENDLESS_BLOCK = 1 << 30;
/**
 * Prefix tables of one meta-block together: at most 256 codes per group (literals, commands,
 * distances) plus six block-switch codes. Real streams use a few hundred KiB; this is the cap.
 */
const MAX_TABLES = 1 << 20;
/** Where each prefix table is built before it is copied into its decoder's pool. */
const scratch = new Int32Array(MAX_TABLE_SIZE);

export interface BrotliDecoderOptions {
  /** The largest window (log2 bytes) the stream may declare. */
  maxWindowBits: number;
  /** Decoding more bytes than this is an error; the ring buffer is no larger than it needs to be. */
  maxOutput: number;
  /** Bytes the bit reader asks its source for at a time (16 KiB by default). */
  inputBufferSize?: number;
}

/** The window a stream declares in its first 1–7 bits (RFC 7932 §9.1); large windows are refused. */
function readWindowBits(br: BitReader): number {
  if (br.read(1) === 0) return 16;
  const n = br.read(3);
  if (n !== 0) return 17 + n;
  const m = br.read(3);
  if (m === 1) throw new BrotliFormatError('large-window streams are not supported');
  return m === 0 ? 17 : 8 + m;
}

function readVarLenUint8(br: BitReader): number {
  if (br.read(1) === 0) return 0;
  const n = br.read(3);
  return n === 0 ? 1 : (1 << n) + br.read(n);
}

/**
 * A streaming brotli decoder (RFC 7932) in TypeScript with fixed memory: the input buffer of its
 * bit reader, a ring buffer of min(window, `maxOutput` rounded up to a power of two) bytes,
 * the prefix tables of the current meta-block (at most `MAX_TABLES` entries) and two context
 * maps. No native code, no thread pool, no garbage per chunk: `pull` hands out views of the ring.
 */
export class BrotliDecoder {
  private readonly br: BitReader;
  private ring: Buffer = Buffer.alloc(0);
  /** Bytes decoded so far. */
  private pos = 0;
  /** Bytes handed out so far. */
  private flushed = 0;
  private readonly steps: Generator<void, void, void>;
  private finished = false;
  /** The prefix tables of the current meta-block, end to end, each exactly as long as it needs. */
  private tables = new Int32Array(1 << 12);
  private literalMap = new Uint8Array(64);
  private distanceMap = new Uint8Array(4);
  private readonly word = new Uint8Array(64);

  constructor(
    source: ByteSource,
    private readonly options: BrotliDecoderOptions,
  ) {
    this.br = new BitReader(source, options.inputBufferSize);
    this.steps = this.run();
  }

  /**
   * The next decoded bytes (a view of the ring buffer, valid until the next call), or undefined
   * once the stream has ended and was checked to the last bit. Throws `BrotliFormatError`.
   */
  pull(): Buffer | undefined {
    if (this.flushed === this.pos && !this.finished) {
      if (this.steps.next().done) this.finished = true;
    }
    if (this.flushed === this.pos) return undefined;
    const mask = this.ring.length - 1;
    const start = this.flushed & mask;
    const end = Math.min(this.ring.length, start + (this.pos - this.flushed));
    this.flushed += end - start;
    return this.ring.subarray(start, end);
  }

  /**
   * Reads a prefix code for `alphabet` symbols and stores its table at `at` in the pool (grown
   * as needed, never beyond `MAX_TABLES` entries); returns the entries it takes.
   */
  private readCode(alphabet: number, at: number): number {
    const size = readPrefixCode(this.br, alphabet, scratch, 0);
    if (at + size > this.tables.length) {
      if (at + size > MAX_TABLES) throw new BrotliFormatError('prefix codes exceed the table budget');
      const grown = new Int32Array(Math.min(MAX_TABLES, Math.max(this.tables.length * 2, at + size)));
      grown.set(this.tables.subarray(0, at));
      this.tables = grown;
    }
    this.tables.set(scratch.subarray(0, size), at);
    return size;
  }

  /** Reads a context map of `size` entries into `map` (RFC 7932 §7.3); returns the number of trees. */
  private readContextMap(map: Uint8Array, size: number): number {
    const br = this.br;
    const trees = readVarLenUint8(br) + 1;
    map.fill(0, 0, size);
    if (trees === 1) return trees;
    const rleMax = br.read(1) === 1 ? br.read(4) + 1 : 0;
    readPrefixCode(br, trees + rleMax, scratch, 0);
    for (let i = 0; i < size;) {
      const code = br.symbol(scratch, 0);
      if (code === 0) map[i++] = 0;
      else if (code <= rleMax) {
        const run = (1 << code) + br.read(code);
        if (i + run > size) throw new BrotliFormatError('context map run past its end');
        i += run;
      } else map[i++] = code - rleMax;
    }
    if (br.read(1) === 1) {
      // Inverse move-to-front.
      const mtf = new Uint8Array(256);
      for (let i = 0; i < 256; i++) mtf[i] = i;
      for (let i = 0; i < size; i++) {
        const index = map[i]!;
        const value = mtf[index]!;
        map[i] = value;
        if (index !== 0) {
          mtf.copyWithin(1, 0, index);
          mtf[0] = value;
        }
      }
    }
    return trees;
  }

  private *run(): Generator<void, void, void> {
    const br = this.br;
    const windowBits = readWindowBits(br);
    if (windowBits > this.options.maxWindowBits) {
      throw new BrotliFormatError(`window of 2^${windowBits} bytes exceeds 2^${this.options.maxWindowBits}`);
    }
    const maxOutput = this.options.maxOutput;
    let ringSize = 1;
    while (ringSize < maxOutput && ringSize < 1 << windowBits) ringSize *= 2;
    this.ring = Buffer.alloc(ringSize);
    const ring = this.ring;
    const mask = ringSize - 1;
    const limit = Math.min(ringSize, 1 << 16);
    const maxBackward = (1 << windowBits) - 16;
    let room = limit;
    let pos = 0;
    const distances = new Int32Array([16, 15, 11, 4]);
    let last = 3;
    let p1 = 0;
    let p2 = 0;
    const tooLong = () => new BrotliFormatError('decodes to more bytes than declared');

    const blockCount = new Int32Array(3);
    const blockLength = new Int32Array(3);
    const blockType = new Int32Array(3);
    const typeRing = new Int32Array(6);
    const typeTree = new Int32Array(3);
    const lengthTree = new Int32Array(3);
    const readBlockLength = (category: number): number => {
      const code = br.symbol(this.tables, lengthTree[category]!);
      return BLOCK_LENGTH_BASE[code]! + br.read(BLOCK_LENGTH_EXTRA[code]!);
    };
    const switchBlock = (category: number): void => {
      const code = br.symbol(this.tables, typeTree[category]!);
      let type =
        code === 0 ? typeRing[category * 2]! : code === 1 ? typeRing[category * 2 + 1]! + 1 : code - 2;
      if (type >= blockCount[category]!) type -= blockCount[category]!;
      typeRing[category * 2] = typeRing[category * 2 + 1]!;
      typeRing[category * 2 + 1] = type;
      blockType[category] = type;
      blockLength[category] = readBlockLength(category);
    };

    for (let isLast = 0; !isLast;) {
      isLast = br.read(1);
      if (isLast && br.read(1) === 1) break;
      const nibbles = br.read(2) + 4;
      if (nibbles === 7) {
        // Metadata: skipped, not part of the output.
        if (isLast) throw new BrotliFormatError('last meta-block holds metadata');
        if (br.read(1) !== 0) throw new BrotliFormatError('reserved bit set');
        const sizeBytes = br.read(2);
        let skip = 0;
        for (let i = 0; i < sizeBytes; i++) {
          const byte = br.read(8);
          if (i + 1 === sizeBytes && sizeBytes > 1 && byte === 0)
            throw new BrotliFormatError('metadata length has a zero last byte');
          skip += byte * 2 ** (8 * i);
        }
        if (sizeBytes > 0) skip++;
        br.alignToByte();
        for (let i = 0; i < skip; i++) br.readByte();
        continue;
      }
      let remaining = 0;
      for (let i = 0; i < nibbles; i++) {
        const nibble = br.read(4);
        if (i + 1 === nibbles && nibbles > 4 && nibble === 0)
          throw new BrotliFormatError('meta-block length has a zero last nibble');
        remaining |= nibble << (4 * i);
      }
      remaining++;
      if (pos + remaining > maxOutput) throw tooLong();
      if (!isLast && br.read(1) === 1) {
        // Uncompressed meta-block.
        br.alignToByte();
        for (; remaining > 0; remaining--) {
          const byte = br.readByte();
          ring[pos & mask] = byte;
          pos++;
          p2 = p1;
          p1 = byte;
          if (--room === 0) {
            this.pos = pos;
            yield;
            room = limit;
          }
        }
        this.pos = pos;
        continue;
      }

      // Block types and counts for literals, commands and distances.
      let at = 0;
      for (let c = 0; c < 3; c++) {
        blockCount[c] = readVarLenUint8(br) + 1;
        blockType[c] = 0;
        typeRing[c * 2] = 1;
        typeRing[c * 2 + 1] = 0;
        if (blockCount[c] === 1) {
          blockLength[c] = ENDLESS_BLOCK;
          continue;
        }
        typeTree[c] = at;
        at += this.readCode(blockCount[c]! + 2, at);
        lengthTree[c] = at;
        at += this.readCode(26, at);
        blockLength[c] = readBlockLength(c);
      }
      const postfixBits = br.read(2);
      const direct = br.read(4) << postfixBits;
      const postfixMask = (1 << postfixBits) - 1;
      const modes = new Uint8Array(blockCount[LITERAL]!);
      for (let i = 0; i < modes.length; i++) modes[i] = br.read(2);
      if (this.literalMap.length < blockCount[LITERAL]! * 64) this.literalMap = new Uint8Array(256 * 64);
      if (this.distanceMap.length < blockCount[DISTANCE]! * 4) this.distanceMap = new Uint8Array(256 * 4);
      const literalMap = this.literalMap;
      const distanceMap = this.distanceMap;
      const literalTrees = this.readContextMap(literalMap, blockCount[LITERAL]! * 64);
      const distanceTrees = this.readContextMap(distanceMap, blockCount[DISTANCE]! * 4);
      const readGroup = (count: number, alphabet: number): Int32Array => {
        const starts = new Int32Array(count);
        for (let i = 0; i < count; i++) {
          starts[i] = at;
          at += this.readCode(alphabet, at);
        }
        return starts;
      };
      const literalAt = readGroup(literalTrees, 256);
      const commandAt = readGroup(blockCount[COMMAND]!, 704);
      const distanceAt = readGroup(distanceTrees, 16 + direct + (48 << postfixBits));
      const tables = this.tables;

      let literalMapAt = 0;
      let lookupAt = modes[0]! * 512;
      let commandTree = commandAt[0]!;
      let distanceMapAt = 0;
      while (remaining > 0) {
        if (blockLength[COMMAND] === 0) {
          switchBlock(COMMAND);
          commandTree = commandAt[blockType[COMMAND]!]!;
        }
        blockLength[COMMAND]!--;
        const command = br.symbol(tables, commandTree);
        let range = command >> 6;
        const implicitDistance = range < 2;
        if (!implicitDistance) range -= 2;
        const insertCode = INSERT_RANGE[range]! + ((command >> 3) & 7);
        const copyCode = COPY_RANGE[range]! + (command & 7);
        const insertLength = INSERT_BASE[insertCode]! + br.read(INSERT_EXTRA[insertCode]!);
        const copyLength = COPY_BASE[copyCode]! + br.read(COPY_EXTRA[copyCode]!);
        if (insertLength > remaining) throw new BrotliFormatError('insert runs past its meta-block');
        for (let i = 0; i < insertLength; i++) {
          if (blockLength[LITERAL] === 0) {
            switchBlock(LITERAL);
            literalMapAt = blockType[LITERAL]! << 6;
            lookupAt = modes[blockType[LITERAL]!]! * 512;
          }
          blockLength[LITERAL]!--;
          const context = CONTEXT_LOOKUP[lookupAt + p1]! | CONTEXT_LOOKUP[lookupAt + 256 + p2]!;
          const byte = br.symbol(tables, literalAt[literalMap[literalMapAt + context]!]!);
          ring[pos & mask] = byte;
          pos++;
          p2 = p1;
          p1 = byte;
          if (--room === 0) {
            this.pos = pos;
            yield;
            room = limit;
          }
        }
        remaining -= insertLength;
        if (remaining === 0) break;

        let distance: number;
        let push = false;
        if (implicitDistance) distance = distances[last & 3]!;
        else {
          if (blockLength[DISTANCE] === 0) {
            switchBlock(DISTANCE);
            distanceMapAt = blockType[DISTANCE]! << 2;
          }
          blockLength[DISTANCE]!--;
          const context = copyLength > 4 ? 3 : copyLength - 2;
          const code = br.symbol(tables, distanceAt[distanceMap[distanceMapAt + context]!]!);
          push = code !== 0;
          if (code < 16) {
            distance = distances[(last - SHORT_INDEX[code]!) & 3]! + SHORT_DELTA[code]!;
            if (distance <= 0) throw new BrotliFormatError('distance short code gives a distance under 1');
          } else if (code < 16 + direct) distance = code - 15;
          else {
            const c = code - direct - 16;
            const bits = 1 + (c >> (postfixBits + 1));
            const offset = ((2 + ((c >> postfixBits) & 1)) << bits) - 4;
            distance = ((offset + br.read(bits)) << postfixBits) + (c & postfixMask) + direct + 1;
          }
        }
        const maxDistance = pos < maxBackward ? pos : maxBackward;
        let source: Uint8Array;
        let from: number;
        let length: number;
        let sourceMask: number;
        if (distance > maxDistance) {
          // A static dictionary word (RFC 7932 §8); the last distances stay as they were.
          if (copyLength < MIN_WORD_LENGTH || copyLength > MAX_WORD_LENGTH) {
            throw new BrotliFormatError('distance beyond the window');
          }
          const id = distance - maxDistance - 1;
          const bits = WORD_COUNT_BITS[copyLength]!;
          const transform = id >>> bits;
          if (transform >= TRANSFORM_COUNT) throw new BrotliFormatError('distance beyond the dictionary');
          length = transformWord(this.word, 0, copyLength, id & ((1 << bits) - 1), transform);
          source = this.word;
          from = 0;
          sourceMask = 63;
        } else {
          if (push) distances[++last & 3] = distance;
          length = copyLength;
          source = ring;
          from = pos - distance;
          sourceMask = mask;
        }
        if (length > remaining) throw new BrotliFormatError('copy runs past its meta-block');
        const to = pos & mask;
        if (
          source === ring &&
          distance >= length &&
          length < room &&
          to + length <= ringSize &&
          (from & mask) + length <= ringSize
        ) {
          // Neither overlapping nor wrapping: one native copy instead of a loop.
          ring.copyWithin(to, from & mask, (from & mask) + length);
          pos += length;
          room -= length;
        } else
          for (let i = 0; i < length; i++) {
            ring[pos & mask] = source[(from + i) & sourceMask]!;
            pos++;
            if (--room === 0) {
              this.pos = pos;
              yield;
              room = limit;
            }
          }
        remaining -= length;
        if (length > 0) {
          p1 = ring[(pos - 1) & mask]!;
          p2 = ring[(pos - 2) & mask]!;
        }
      }
      this.pos = pos;
    }
    br.expectEnd();
    this.pos = pos;
  }
}
