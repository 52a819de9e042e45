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
