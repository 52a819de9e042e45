import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { BlobDigestMismatchError } from './blob-store';

/**
 * A pass-through that hashes what flows through it. With `expected`, a mismatch fails the stream
 * before it ends (in `flush`), so a consumer that commits on end (a multipart upload completing, a
 * rename after the pipeline) never commits bytes of the wrong digest.
 */
export class DigestCheck extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  digest: string | null = null;

  constructor(private readonly expected?: string) {
    super();
  }

  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null, data?: Buffer) => void,
  ): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: (error?: Error | null) => void): void {
    this.digest = `sha256:${this.hash.digest('hex')}`;
    if (this.expected !== undefined && this.expected !== this.digest)
      callback(
        new BlobDigestMismatchError(`blob content has digest ${this.digest}, expected ${this.expected}`),
      );
    else callback();
  }
}
