import { Deflate } from 'pako';

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

/**
 * A raw deflate stream (no zlib or gzip framing) fed in pieces of any size: the output does
 * not depend on how the input was cut. Output arrives through `onData` as it is made.
 */
export class DeflateStream {
  private readonly deflate: Deflate;

  constructor(params: DeflateParams, onData: (chunk: Uint8Array) => void) {
    this.deflate = new Deflate({
      level: params.level,
      memLevel: params.memLevel,
      windowBits: -params.windowBits,
      strategy: params.strategy as 0,
      raw: true,
      legacyHash: params.legacyHash,
      chunkSize: 1 << 15,
    });
    this.deflate.onData = onData;
    this.deflate.onEnd = () => undefined;
  }

  write(data: Uint8Array): void {
    if (data.length > 0 && !this.deflate.push(data, false)) throw this.failure();
  }

  end(): void {
    if (!this.deflate.push(new Uint8Array(0), true)) throw this.failure();
  }

  private failure(): Error {
    return new Error(`deflate failed (zlib status ${String(this.deflate.err)})`);
  }
}
