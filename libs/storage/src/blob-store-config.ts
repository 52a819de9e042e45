import { join, resolve } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, parseEnv } from '@ferry/protocol';
import { z } from 'zod';
import { BlobStore } from './blob-store';
import { FileBlobStore } from './file-blob-store';
import { LayerCache } from './layer-cache';
import { S3BlobStore } from './s3-blob-store';

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const EnvSchema = z.object({
  BLOB_STORE: z
    .string()
    .regex(/^(file|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?)$/, 'file, or s3://bucket[/prefix]')
    .default('file'),
  BLOB_S3_FORCE_PATH_STYLE: flag.default(false),
  AWS_ENDPOINT_URL_S3: z.string().url().optional(),
  AWS_ENDPOINT_URL: z.string().url().optional(),
  AWS_REGION: z.string().min(1).optional(),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
  AWS_DEFAULT_REGION: z.string().min(1).optional(),
  BLOB_DOWNLOADS: z.enum(['redirect', 'proxy']).default('redirect'),
  BLOB_PRESIGN_SECONDS: z.coerce.number().int().min(10).max(604_800).default(300),
  BLOB_PUBLIC_URL: z
    .string()
    .url()
    .refine((v) => ['http:', 'https:'].includes(new URL(v).protocol), 'must start with http:// or https://')
    .optional(),
  BLOB_ABANDONED_UPLOAD_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(3600),
  BLOB_CACHE_MB: z.coerce
    .number()
    .int()
    .min(16)
    .max(16 * 1024 * 1024)
    .default(2048),
});

/** Where blobs live and how devices download them: the `BLOB_*` and standard `AWS_*` variables. */
export interface BlobStoreConfig {
  kind: 'file' | 's3';
  /** s3: bucket and key prefix (empty or ending in `/`). */
  bucket: string;
  prefix: string;
  endpoint: string | null;
  region: string;
  forcePathStyle: boolean;
  /** Static keys from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`; null: the SDK's default chain. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | null;
  /** `redirect`: devices that accept it are sent to a presigned URL; `proxy`: the server streams. */
  downloads: 'redirect' | 'proxy';
  presignSeconds: number;
  /** Replaces scheme and host of presigned URLs (a CDN in front of the store). */
  publicUrl: string | null;
  /** Multipart uploads and temporary objects older than this were left by killed processes. */
  abandonedUploadSeconds: number;
  /** Cap of the local cache of fetched layers (remote stores only). */
  cacheBytes: number;
}

export function loadBlobStoreConfig(env: NodeJS.ProcessEnv): BlobStoreConfig {
  const e = parseEnv(EnvSchema, env);
  if (Boolean(e.AWS_ACCESS_KEY_ID) !== Boolean(e.AWS_SECRET_ACCESS_KEY))
    throw new ConfigError(['AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither']);
  let bucket = '';
  let prefix = '';
  if (e.BLOB_STORE.startsWith('s3://')) {
    const rest = e.BLOB_STORE.slice('s3://'.length);
    const slash = rest.indexOf('/');
    bucket = slash < 0 ? rest : rest.slice(0, slash);
    prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    if (prefix !== '') prefix += '/';
    if (/[^\w./-]/.test(prefix))
      throw new ConfigError([
        `BLOB_STORE=${JSON.stringify(e.BLOB_STORE)}: the prefix may hold letters, digits and _ . / - only`,
      ]);
  }
  return {
    kind: e.BLOB_STORE === 'file' ? 'file' : 's3',
    bucket,
    prefix,
    endpoint: e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL ?? null,
    region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: e.BLOB_S3_FORCE_PATH_STYLE,
    credentials:
      e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: e.AWS_ACCESS_KEY_ID,
            secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
            ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}),
          }
        : null,
    downloads: e.BLOB_DOWNLOADS,
    presignSeconds: e.BLOB_PRESIGN_SECONDS,
    publicUrl: e.BLOB_PUBLIC_URL ?? null,
    abandonedUploadSeconds: e.BLOB_ABANDONED_UPLOAD_SECONDS,
    cacheBytes: e.BLOB_CACHE_MB * 2 ** 20,
  };
}

/**
 * An S3 client for the config: static keys when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are
 * set, otherwise the SDK's default chain (`AWS_PROFILE`, web identity, instance and task roles…). Checksums only when
 * an operation requires them: S3-compatible stores such as Ceph RGW refuse the SDK's default
 * `aws-chunked` streaming bodies with trailing checksums (411 MissingContentLength).
 */
export function s3ClientFor(config: BlobStoreConfig): S3Client {
  return new S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: config.forcePathStyle,
    ...(config.credentials ? { credentials: config.credentials } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The blob store of `config`, with `dataDir` as local scratch (and, for `file`, the blobs' home). */
export function createBlobStore(config: BlobStoreConfig, dataDir: string): BlobStore {
  const dir = resolve(dataDir);
  if (config.kind === 'file') return new FileBlobStore(dir);
  return new S3BlobStore({
    client: s3ClientFor(config),
    bucket: config.bucket,
    prefix: config.prefix,
    scratchDir: dir,
    cache: new LayerCache(join(dir, 'cache', 'layers'), config.cacheBytes),
    publicBaseUrl: config.publicUrl,
  });
}
