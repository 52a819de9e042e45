import { Transform } from 'node:stream';
import { PayloadTooLargeError } from '@ferry/protocol';

/** Counts bytes flowing through and fails the stream with `makeError()` once `limit` is passed. */
export function byteLimit(limit: number, makeError: (seen: number) => Error): Transform & { seen(): number } {
  let seen = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > limit) callback(makeError(seen));
      else callback(null, chunk);
    },
  });
  return Object.assign(transform, { seen: () => seen });
}

export function tooLarge(limit: number): (seen: number) => Error {
  return () =>
    new PayloadTooLargeError(
      `release archive is larger than the ${limit}-byte limit (FERRY_MAX_RELEASE_BYTES)`,
      {
        limit,
      },
    );
}

export interface ExpansionLimits {
  /** Compressed bytes behind the output so far. */
  compressedBytes: () => number;
  /** Largest output / compressed ratio, checked once the output passes `floorBytes`. */
  maxRatio: number;
  floorBytes: number;
  /** Largest output in absolute terms. */
  maxBytes: number;
  tooLarge: () => Error;
  bomb: () => Error;
}

/**
 * Guards the output of a decompressor: fails with `bomb()` once it expands more than `maxRatio`
 * times the compressed bytes behind it (past a floor every small input may reach), and with
 * `tooLarge()` past `maxBytes`. Checked chunk by chunk, so a bomb stops after one chunk too many.
 */
export function expansionGuard(limits: ExpansionLimits): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > Math.max(limits.floorBytes, limits.compressedBytes() * limits.maxRatio))
        callback(limits.bomb());
      else if (seen > limits.maxBytes) callback(limits.tooLarge());
      else callback(null, chunk);
    },
  });
}
