import { readFileSync } from 'node:fs';
import { Deflate } from 'pako';

import { DeflateStream, type DeflateParams } from './deflate-stream';

/**
 * One `DeflateStream` makes stream after stream; each must be byte for byte what a new deflate
 * makes of the same input (the decoder rebuilds gzip members with it, and the layer's digest
 * checks every byte).
 */

/** A small deterministic generator (tests must be repeatable). */
function random(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

/** `length` bytes over a small alphabet: many matches, and ties between candidate matches. */
function repetitive(next: () => number, length: number): Buffer {
  const letters = 2 + Math.floor(next() * 3);
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = 97 + Math.floor(next() * letters);
  return bytes;
}

/** `input` through `stream`, cut into pieces of random sizes; the output copied out. */
function deflateWith(
  stream: DeflateStream,
  params: DeflateParams,
  input: Uint8Array,
  next: () => number,
): Buffer {
  const chunks: Buffer[] = [];
  stream.start(params, (chunk) => chunks.push(Buffer.from(chunk)));
  for (let at = 0; at < input.length;) {
    const piece = 1 + Math.floor(next() * 70_000);
    stream.write(input.subarray(at, at + piece));
    at += piece;
  }
  stream.end();
  return Buffer.concat(chunks);
}

/** What a new pako deflate makes of `input`, handing out 32 KiB chunks (as the decoder always did). */
function fresh(params: DeflateParams, input: Uint8Array): Buffer {
  const chunks: Buffer[] = [];
  const deflate = new Deflate({
    level: params.level,
    memLevel: params.memLevel,
    windowBits: -params.windowBits,
    strategy: params.strategy as 0,
    raw: true,
    legacyHash: params.legacyHash,
    chunkSize: 1 << 15,
  });
  deflate.onData = (chunk) => chunks.push(Buffer.from(chunk));
  deflate.onEnd = () => undefined;
  deflate.push(input, true);
  return Buffer.concat(chunks);
}

const NODE_HASH_9: DeflateParams = { level: 9, memLevel: 8, windowBits: 15, strategy: 0, legacyHash: false };

describe('DeflateStream', () => {
  it('makes exactly what a new deflate makes, stream after stream with one state', () => {
    // A short stream after a long one: deflate compares bytes past the input's end when it picks
    // among candidate matches, so what the last stream left there must not be seen (without
    // clearing it, about a third of these differ).
    const next = random(7);
    const stream = new DeflateStream();
    let differing = 0;
    for (let n = 0; n < 600; n++) {
      const long = repetitive(next, 20 + Math.floor(next() * 2000));
      const short = repetitive(next, 5 + Math.floor(next() * 300));
      deflateWith(stream, NODE_HASH_9, long, next);
      if (!deflateWith(stream, NODE_HASH_9, short, next).equals(fresh(NODE_HASH_9, short))) differing++;
    }
    expect(differing).toBe(0);
  });

  it('makes the same bytes as a new deflate for real files under every setting it is given, in any order', () => {
    const next = random(11);
    const inputs = [
      readFileSync(require.resolve('pako')), // JavaScript
      readFileSync(process.execPath).subarray(1 << 20, 3 << 19), // machine code
      Buffer.alloc(200_000), // zeros
      repetitive(next, 100_000),
      Buffer.from('x'),
    ];
    const settings: DeflateParams[] = [
      NODE_HASH_9,
      { ...NODE_HASH_9, legacyHash: true },
      { level: 6, memLevel: 8, windowBits: 15, strategy: 0, legacyHash: true },
      { level: 1, memLevel: 9, windowBits: 15, strategy: 0, legacyHash: false },
      { level: 9, memLevel: 8, windowBits: 12, strategy: 1, legacyHash: true },
      { level: 6, memLevel: 8, windowBits: 15, strategy: 3, legacyHash: false },
    ];
    const stream = new DeflateStream();
    // Every setting twice, in random order: the state is reset or made anew between streams.
    for (const params of [...settings, ...settings].sort(() => next() - 0.5)) {
      for (const input of inputs) {
        expect(deflateWith(stream, params, input, next).equals(fresh(params, input))).toBe(true);
      }
    }
  });

  it('forgets a stream left unfinished when the next starts', () => {
    const next = random(3);
    const stream = new DeflateStream();
    const input = readFileSync(require.resolve('pako'));
    stream.start(NODE_HASH_9, () => undefined);
    stream.write(input.subarray(0, 100_000));
    expect(deflateWith(stream, NODE_HASH_9, input, next).equals(fresh(NODE_HASH_9, input))).toBe(true);
  });

  it('hands out views of one output buffer, each valid until its callback returns', () => {
    const stream = new DeflateStream();
    const buffers = new Set<ArrayBufferLike>();
    let total = 0;
    stream.start({ ...NODE_HASH_9, level: 0 }, (chunk) => {
      buffers.add(chunk.buffer);
      total += chunk.length;
    });
    stream.write(repetitive(random(5), 500_000));
    stream.end();
    expect(total).toBeGreaterThan(500_000); // stored blocks: several output chunks
    expect(buffers.size).toBe(1);
  });

  it('refuses to deflate before a stream was started', () => {
    const stream = new DeflateStream();
    expect(() => stream.write(Buffer.from('abc'))).toThrow('deflate stream not started');
    expect(() => stream.end()).toThrow('deflate stream not started');
  });
});
