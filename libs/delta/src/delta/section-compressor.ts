import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createBrotliCompress } from 'node:zlib';

const CHUNK = 1 << 20;

/** Brotli settings of one section. */
export interface SectionBrotli {
  quality: number;
  windowBits: number;
  /** Brotli's input block bits (`BROTLI_PARAM_LGBLOCK`), when not brotli's default. */
  blockBits?: number;
  /** The section's final size, when known before compressing. */
  sizeHint?: number;
}

/** Compresses `raw` (a finished section file) to `out`. */
export async function compressFile(raw: string, out: string, settings: SectionBrotli): Promise<void> {
  await pipeline(
    createReadStream(raw, { highWaterMark: CHUNK }),
    brotliStream(settings),
    createWriteStream(out),
  );
}

function brotliStream(settings: SectionBrotli) {
  return createBrotliCompress({
    chunkSize: 1 << 16,
    params: {
      [constants.BROTLI_PARAM_QUALITY]: settings.quality,
      [constants.BROTLI_PARAM_LGWIN]: settings.windowBits,
      ...(settings.blockBits !== undefined && { [constants.BROTLI_PARAM_LGBLOCK]: settings.blockBits }),
      ...(settings.sizeHint !== undefined && {
        [constants.BROTLI_PARAM_SIZE_HINT]: Math.min(settings.sizeHint, 2 ** 30),
      }),
    },
  });
}

/**
 * Brotli-compresses a section file while the writer is still appending to it: reads up to what
 * the writer reports as written, waits for more, and ends at the size `finish` is given. Brotli
 * runs on libuv's thread pool, so quality 11 over a large section (about 30 s for 17 MB of patch
 * bytes) overlaps the encoder's own work on the main thread instead of following it.
 */
export class FollowingCompressor {
  private written = 0;
  private end: number | undefined;
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(
    raw: string,
    out: string,
    readonly settings: SectionBrotli,
  ) {
    this.done = pipeline(Readable.from(this.chunks(raw)), brotliStream(settings), createWriteStream(out), {
      signal: this.abort.signal,
    });
    // Failures surface in finish(); a cancelled run is nobody's error.
    this.done.catch(() => undefined);
  }

  /** The writer has appended the section's first `size` bytes to the file. */
  advance(size: number): void {
    this.written = size;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** No bytes follow the first `size`; resolves once the compressed file is complete. */
  async finish(size: number): Promise<void> {
    this.end = size;
    this.advance(size);
    await this.done;
  }

  /** Stops compressing; the output file is left for the caller to overwrite or remove. */
  async cancel(): Promise<void> {
    this.abort.abort();
    this.advance(this.written);
    await this.done.catch(() => undefined);
  }

  private async *chunks(raw: string): AsyncGenerator<Buffer> {
    const fh = await open(raw, 'r');
    try {
      let at = 0;
      for (;;) {
        if (this.abort.signal.aborted) return;
        if (at < this.written) {
          const buf = Buffer.allocUnsafe(Math.min(CHUNK, this.written - at));
          const { bytesRead } = await fh.read(buf, 0, buf.length, at);
          if (bytesRead === 0) throw new Error(`${raw} shrank while it was compressed`);
          at += bytesRead;
          yield buf.subarray(0, bytesRead);
        } else if (this.end !== undefined) return;
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      await fh.close();
    }
  }
}
