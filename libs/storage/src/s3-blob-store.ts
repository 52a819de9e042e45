import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable, pipeline } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NotFoundError } from '@ferry/protocol';
import { BlobStore, ByteRange, Staging, digestHex } from './blob-store';
import { DigestCheck } from './digest-check';
import { LayerCache } from './layer-cache';

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix, empty or ending in `/`. */
  prefix: string;
  /** Local scratch folder (staging, layer cache); never shared between hosts. */
  scratchDir: string;
  /** Local cache of fetched blobs for {@link S3BlobStore.localFile}. */
  cache: LayerCache;
  /** Multipart part size (≥ 5 MiB, the S3 minimum). */
  partSize?: number;
  /** Scheme, host and port that replace the store's in presigned URLs (a CDN in front of it). */
  publicBaseUrl?: string | null;
}

function isNotFound(error: unknown): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  return error.$metadata.httpStatusCode === 404 || error.name === 'NotFound' || error.name === 'NoSuchKey';
}

/**
 * Blobs in any S3-compatible object store under `<prefix>blobs/sha256/<hex>`. Uploads stream as
 * multipart uploads hashed on the way: with a known digest straight to the final key, the upload
 * completing only after the hash matched (a mismatch fails the body stream before its end, so the
 * SDK aborts the multipart upload); with an unknown digest to `<prefix>tmp/<uuid>`, then copied
 * under the digest once it is known and the temporary object deleted. Nothing half-written or
 * unverified is ever visible under a digest; multipart uploads of killed processes are aborted by
 * {@link S3BlobStore.sweepAbandonedUploads}.
 */
export class S3BlobStore extends BlobStore {
  private readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  private readonly cache: LayerCache;
  private readonly partSize: number;
  private readonly publicBaseUrl: string | null;

  constructor(options: S3BlobStoreOptions) {
    super(options.scratchDir);
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.cache = options.cache;
    this.partSize = options.partSize ?? 8 * 1024 * 1024;
    this.publicBaseUrl = options.publicBaseUrl ?? null;
  }

  describe(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  keyOf(digest: string): string {
    return `${this.prefix}blobs/sha256/${digestHex(digest)}`;
  }

  async size(digest: string): Promise<number | null> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest) }),
      );
      return head.ContentLength ?? 0;
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** Streams `source` to `key` as a multipart upload; aborted (parts removed) when anything fails. */
  private async upload(key: string, source: Readable, check: DigestCheck): Promise<void> {
    let streamError: Error | null = null;
    const body = pipeline(source, check, (error) => {
      if (error) streamError = error;
    });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/octet-stream' },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      check.destroy();
      source.destroy();
      throw streamError ?? error;
    }
    if (streamError) throw streamError as Error;
  }

  async put(source: Readable, expected?: string): Promise<{ digest: string; size: number }> {
    if (expected !== undefined) {
      digestHex(expected);
      const size = await this.size(expected);
      const check = new DigestCheck(expected);
      if (size !== null) {
        // Already stored: the bytes must still be the ones announced.
        for await (const chunk of pipeline(source, check, () => undefined)) void chunk;
        return { digest: expected, size };
      }
      await this.upload(this.keyOf(expected), source, check);
      return { digest: expected, size: check.bytes };
    }
    const temp = `${this.prefix}tmp/${randomUUID()}`;
    const check = new DigestCheck();
    try {
      await this.upload(temp, source, check);
      const digest = check.digest as string;
      if ((await this.size(digest)) === null)
        await this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: this.keyOf(digest),
            CopySource: encodeURI(`${this.bucket}/${temp}`),
          }),
        );
      return { digest, size: check.bytes };
    } finally {
      await this.client
        .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: temp }))
        .catch(() => undefined);
    }
  }

  async adopt(path: string, digest: string): Promise<void> {
    await this.put(createReadStream(path), digest);
    await rm(path, { force: true });
  }

  async open(digest: string, range?: ByteRange): Promise<Readable> {
    try {
      const object = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(digest),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      return object.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) throw new NotFoundError(`no blob ${digest}`);
      throw error;
    }
  }

  async delete(digest: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest) }));
  }

  localFile(digest: string, staging: Staging): Promise<string | null> {
    return this.cache.file(digest, staging, async () => {
      try {
        return await this.open(digest);
      } catch (error) {
        if (error instanceof NotFoundError) return null;
        throw error;
      }
    });
  }

  override async presignedUrl(digest: string, expiresSeconds: number): Promise<string> {
    const url = await getSignedUrl(
      this.client,
      new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(digest) }),
      { expiresIn: expiresSeconds },
    );
    if (!this.publicBaseUrl) return url;
    const signed = new URL(url);
    const base = new URL(this.publicBaseUrl);
    signed.protocol = base.protocol;
    signed.host = base.host;
    return signed.toString();
  }

  override async sweepAbandonedUploads(staleMs: number): Promise<number> {
    const cutoff = Date.now() - staleMs;
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: this.prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) >= cutoff) continue;
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.bucket,
            Key: upload.Key,
            UploadId: upload.UploadId,
          }),
        );
        removed += 1;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `${this.prefix}tmp/`,
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key || (object.LastModified?.getTime() ?? 0) >= cutoff) continue;
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: object.Key }));
        removed += 1;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return removed;
  }
}
