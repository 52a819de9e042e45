import {
  Z_BUF_ERROR,
  Z_FINISH,
  Z_NO_FLUSH,
  Z_OK,
  Z_STREAM_END,
  ZStream,
  zlibDeflate,
  zlibDeflateInit2,
  zlibDeflateReset,
} from 'pako';

import { DeltaCorruptError } from './errors';

/**
 * The zlib settings that rebuild a deflate stream byte for byte. Ferry deflates with pako (zlib's
 * algorithm in plain JavaScript), never with the zlib the runtime was built with: the server's
 * Node and a device's Debian Node link different zlib builds, which may emit different bytes
 * for the same settings; pako's bytes are the same on every runtime.
 */
export interface DeflateParams {
  /** 0–9 */
  level: number;
  /** 1–9 */
  memLevel: number;
  /** 9–15 (log2 of the window) */
  windowBits: number;
  /** 0 default, 1 filtered, 2 Huffman only, 3 RLE, 4 fixed */
  strategy: number;
  /**
   * zlib's classic hash (canonical zlib, as Debian, Python and Node before 17 deflate) instead
   * of the hash of the Chromium zlib in Node 17 and later: the two choose different matches.
   */
  legacyHash: boolean;
}

/**
 * One number in the delta's lengths stream: level, memLevel, windowBits and strategy, 4 bits
 * each, then the hash in bit 16.
 */
export function packDeflateParams(p: DeflateParams): number {
  return (
    p.level | (p.memLevel << 4) | (p.windowBits << 8) | (p.strategy << 12) | (p.legacyHash ? 1 << 16 : 0)
  );
}

export function unpackDeflateParams(code: number): DeflateParams {
  const params = {
    level: code & 15,
    memLevel: (code >> 4) & 15,
    windowBits: (code >> 8) & 15,
    strategy: (code >> 12) & 15,
    legacyHash: code >= 1 << 16,
  };
  if (
    code >= 1 << 17 ||
    params.level > 9 ||
    params.memLevel < 1 ||
    params.memLevel > 9 ||
    params.windowBits < 9 ||
    params.strategy > 4
  ) {
    throw new DeltaCorruptError(`delta operation has impossible deflate settings ${code}`);
  }
  return params;
}

/** Output is handed out in pieces of this size (views of one buffer, reused). */
const OUTPUT_CHUNK = 1 << 15;
const NO_INPUT = new Uint8Array(0);

/**
 * A raw deflate stream (no zlib or gzip framing) fed in pieces of any size: at levels 1–9 the
 * output does not depend on how the input was cut (level 0's stored blocks end where a piece
 * did; the encoder never chooses it). Output arrives through `onData` as it is made, as a view
 * that is only valid until `onData` returns (copy what you keep).
 *
 * One instance makes any number of streams one after another (`start`), and keeps its buffers
 * from one to the next while the settings stay the same: a layer with thousands of gzip members
 * would otherwise leave about 330 KiB of deflate state per member for the garbage collector,
 * which on a device is resident memory until it runs. A restarted stream makes the same bytes
 * as a new one: what the last stream left in the window and chains is cleared.
 */
export class DeflateStream {
  private readonly strm = new ZStream();
  private readonly output = new Uint8Array(OUTPUT_CHUNK);
  private code = -1;
  private onData: (chunk: Uint8Array) => void = () => undefined;

  /** Begins a new stream (the last one, finished or not, is dropped). */
  start(params: DeflateParams, onData: (chunk: Uint8Array) => void): void {
    const code = packDeflateParams(params);
    const strm = this.strm;
    if (code === this.code && zlibDeflateReset(strm) === Z_OK) {
      const state = strm.state as { window: Uint8Array; prev: Uint16Array };
      // A new state's window and chains are zero: bytes past the input's end take part in
      // comparing candidate matches, so stale ones could change which match is chosen.
      state.window.fill(0);
      state.prev.fill(0);
    } else {
      const status = zlibDeflateInit2(
        strm,
        params.level,
        8,
        -params.windowBits,
        params.memLevel,
        params.strategy as 0,
        params.legacyHash,
      );
      if (status !== Z_OK) {
        this.code = -1;
        throw new Error(`deflate failed to start (zlib status ${status})`);
      }
      this.code = code;
    }
    strm.output = this.output;
    strm.next_out = 0;
    strm.avail_out = 0;
    this.onData = onData;
  }

  write(data: Uint8Array): void {
    if (data.length > 0) this.run(data, Z_NO_FLUSH);
  }

  end(): void {
    this.run(NO_INPUT, Z_FINISH);
  }

  private run(data: Uint8Array, flush: typeof Z_NO_FLUSH | typeof Z_FINISH): void {
    const strm = this.strm;
    if (this.code < 0) throw new Error('deflate stream not started');
    strm.input = data;
    strm.next_in = 0;
    strm.avail_in = data.length;
    // The steps of pako's own `Deflate.push`, with one output buffer instead of a new one per
    // chunk: deflate fits stored blocks to the output space it is given, so when the output is
    // handed out and how much space follows are part of what makes the bytes.
    for (;;) {
      if (strm.avail_out === 0) {
        strm.next_out = 0;
        strm.avail_out = OUTPUT_CHUNK;
      }
      const status = zlibDeflate(strm, flush);
      if (status !== Z_OK && status !== Z_STREAM_END && status !== Z_BUF_ERROR) {
        // The state is unusable after an error: the next start makes a new one.
        this.code = -1;
        throw new Error(`deflate failed (zlib status ${status})`);
      }
      if (status === Z_STREAM_END) {
        if (strm.next_out > 0) this.onData(this.output.subarray(0, strm.next_out));
        strm.avail_out = 0;
        return;
      }
      if (strm.avail_out === 0) {
        this.onData(this.output);
        continue;
      }
      if (flush !== Z_NO_FLUSH && strm.next_out > 0) {
        this.onData(this.output.subarray(0, strm.next_out));
        strm.avail_out = 0;
        continue;
      }
      // Z_BUF_ERROR: no input left and nothing to flush yet; what is pending goes out later.
      if (strm.avail_in === 0) return;
    }
  }
}
