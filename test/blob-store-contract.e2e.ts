import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NotFoundError, ValidationError } from '@ferry/protocol';
import {
  BlobDigestMismatchError,
  BlobStore,
  FileBlobStore,
  LayerCache,
  S3BlobStore,
  createBlobStore,
  loadBlobStoreConfig,
} from '@ferry/storage';
import { S3Gateway, startS3Gateway } from './support/s3-gateway';

/**
 * The blob-store contract, run on both implementations: the local folder and a real S3 server (Ceph
 * RGW). Whatever holds for one must hold for the other: the server and the workers only see the
 * contract.
 */
const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A stream of `data` in 64 KiB pieces that fails with `error` after `failAfter` bytes. */
function source(data: Buffer, failAfter?: number): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let at = 0; at < data.length; at += 64 * 1024) {
      if (failAfter !== undefined && at >= failAfter) throw new Error('connection reset');
      yield data.subarray(at, at + 64 * 1024);
      if (at % MiB === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return Readable.from(pieces());
}

let s3: S3Gateway;
const dirs: string[] = [];
const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-contract-'));
  dirs.push(dir);
  return dir;
};

beforeAll(async () => {
  s3 = await startS3Gateway();
}, 240_000);
afterAll(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await s3?.stop();
}, 180_000);

interface Subject {
  store: BlobStore;
  /** What the store holds besides its blobs: temporaries, unfinished uploads (must stay empty). */
  leftovers(): Promise<string[]>;
}

const implementations: [string, () => Promise<Subject>][] = [
  [
    'file',
    () => {
      const dir = scratch();
      const store = new FileBlobStore(dir);
      return Promise.resolve({
        store,
        leftovers: () => Promise.resolve(existsSync(join(dir, 'tmp')) ? readdirSync(join(dir, 'tmp')) : []),
      });
    },
  ],
  [
    's3',
    async () => {
      const bucket = await s3.newBucket();
      const store = new S3BlobStore({
        client: s3.client,
        bucket,
        prefix: 'fleet-a/',
        scratchDir: scratch(),
        cache: new LayerCache(join(scratch(), 'cache'), 64 * MiB),
        partSize: 5 * MiB,
      });
      return {
        store,
        leftovers: async () => {
          const uploads = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
          const temps = await s3.client.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: 'fleet-a/tmp/' }),
          );
          return [
            ...(uploads.Uploads ?? []).map((u) => `upload ${u.Key}`),
            ...(temps.Contents ?? []).map((o) => `object ${o.Key}`),
          ];
        },
      };
    },
  ],
];

describe.each(implementations)('blob store contract: %s', (kind, make) => {
  let subject: Subject;
  let store: BlobStore;
  beforeAll(async () => {
    subject = await make();
    store = subject.store;
  });
  afterEach(async () => {
    expect(await subject.leftovers()).toEqual([]);
  });

  it('stores a stream under its sha256 and reads back the same bytes, whole or a range', async () => {
    const data = randomBytes(300_000);
    const { digest, size } = await store.put(source(data));
    expect(digest).toBe(digestOf(data));
    expect(size).toBe(data.length);
    expect(await store.size(digest)).toBe(data.length);
    expect((await readAll(await store.open(digest))).equals(data)).toBe(true);
    expect(
      (await readAll(await store.open(digest, { start: 10, end: 19 }))).equals(data.subarray(10, 20)),
    ).toBe(true);
    expect(
      (await readAll(await store.open(digest, { start: 299_990, end: 299_999 }))).equals(
        data.subarray(299_990),
      ),
    ).toBe(true);
  });

  it('streams a multipart-sized blob with its expected digest and reads it back', async () => {
    const data = randomBytes(12 * MiB + 12345);
    const { digest, size } = await store.put(source(data), digestOf(data));
    expect(digest).toBe(digestOf(data));
    expect(size).toBe(data.length);
    expect((await readAll(await store.open(digest))).equals(data)).toBe(true);
  });

  it('refuses a multipart-sized upload whose bytes do not match its digest: nothing visible, parts aborted', async () => {
    const data = randomBytes(11 * MiB);
    const claimed = digestOf(Buffer.from('something else'));
    await expect(store.put(source(data), claimed)).rejects.toThrow(BlobDigestMismatchError);
    expect(await store.size(claimed)).toBeNull();
    expect(await store.size(digestOf(data))).toBeNull();
  });

  it('refuses a small upload whose bytes do not match its digest', async () => {
    const data = randomBytes(1000);
    const claimed = digestOf(Buffer.from('other'));
    await expect(store.put(source(data), claimed)).rejects.toThrow(BlobDigestMismatchError);
    expect(await store.size(claimed)).toBeNull();
  });

  it('stores nothing from a stream that fails halfway, with or without an expected digest', async () => {
    const data = randomBytes(12 * MiB);
    await expect(store.put(source(data, 7 * MiB))).rejects.toThrow('connection reset');
    await expect(store.put(source(data, 7 * MiB), digestOf(data))).rejects.toThrow('connection reset');
    expect(await store.size(digestOf(data))).toBeNull();
  });

  it('keeps one copy of the same content, also when written twice at once', async () => {
    const data = randomBytes(200_000);
    const [a, b] = await Promise.all([store.put(source(data)), store.put(source(data), digestOf(data))]);
    expect(a.digest).toBe(b.digest);
    expect((await readAll(await store.open(a.digest))).equals(data)).toBe(true);
  });

  it('adopts a staged file under its digest (the file is gone) and refuses one whose bytes differ', async () => {
    const staging = await store.openStaging();
    const data = randomBytes(50_000);
    const file = join(staging.path, 'delta');
    writeFileSync(file, data);
    await store.adopt(file, digestOf(data));
    expect(existsSync(file)).toBe(false);
    expect((await readAll(await store.open(digestOf(data)))).equals(data)).toBe(true);
    writeFileSync(file, Buffer.from('bit rot'));
    const other = digestOf(randomBytes(10));
    await expect(store.adopt(file, other)).rejects.toThrow(BlobDigestMismatchError);
    expect(await store.size(other)).toBeNull();
    await staging.discard();
  });

  it('answers a missing blob as missing, refuses names that are not digests, and deletes', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    expect(await store.size(missing)).toBeNull();
    await expect(store.open(missing)).rejects.toThrow(NotFoundError);
    for (const bad of ['sha256:../../etc/passwd', `sha256:${'A'.repeat(64)}`, 'md5:abc', '']) {
      await expect(store.size(bad)).rejects.toThrow(ValidationError);
      await expect(store.put(source(Buffer.from('x')), bad)).rejects.toThrow(ValidationError);
    }
    const { digest } = await store.put(source(Buffer.from('short-lived')));
    await store.delete(digest);
    expect(await store.size(digest)).toBeNull();
  });

  it('hands the encoder a local file of a blob, valid until its staging folder is discarded', async () => {
    const data = randomBytes(400_000);
    const { digest } = await store.put(source(data));
    const staging = await store.openStaging();
    const path = await store.localFile(digest, staging);
    expect(path).not.toBeNull();
    expect(readFileSync(path as string).equals(data)).toBe(true);
    expect(await store.localFile(`sha256:${'1'.repeat(64)}`, staging)).toBeNull();
    await staging.discard();
    if (kind === 's3') expect(existsSync(path as string)).toBe(false);
  });

  it(
    kind === 's3'
      ? 'hands out presigned URLs that serve ranges and refuse tampering'
      : 'has no presigned URLs (the server proxies)',
    async () => {
      const data = randomBytes(100_000);
      const { digest } = await store.put(source(data));
      const url = await store.presignedUrl(digest, 60);
      if (kind === 'file') {
        expect(url).toBeNull();
        return;
      }
      const whole = await fetch(url as string);
      expect(whole.status).toBe(200);
      expect(Buffer.from(await whole.arrayBuffer()).equals(data)).toBe(true);
      const part = await fetch(url as string, { headers: { range: 'bytes=1000-' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 1000-99999/100000`);
      expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(1000))).toBe(true);
      const tampered = (url as string).replace(digest.slice(7, 15), '00000000');
      expect((await fetch(tampered)).status).toBe(403);
      const expired = await store.presignedUrl(digest, 1);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect((await fetch(expired as string)).status).toBe(403);
    },
  );
});

describe('S3 store: what killed processes leave behind', () => {
  it('aborts unfinished multipart uploads and deletes temporary objects older than the cutoff, keeping blobs', async () => {
    const bucket = await s3.newBucket();
    const store = new S3BlobStore({
      client: s3.client,
      bucket,
      prefix: 'p/',
      scratchDir: scratch(),
      cache: new LayerCache(join(scratch(), 'cache'), 64 * MiB),
    });
    const kept = await store.put(source(Buffer.from('a blob')));
    // What a process killed mid-upload leaves: a started multipart upload with one part, a temp object.
    const started = await s3.client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: store.keyOf(digestOf(Buffer.from('x'))) }),
    );
    await s3.client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: store.keyOf(digestOf(Buffer.from('x'))),
        UploadId: started.UploadId,
        PartNumber: 1,
        Body: randomBytes(1000),
      }),
    );
    await s3.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'p/tmp/killed', Body: randomBytes(100) }),
    );
    // Young ones belong to live processes: kept.
    expect(await store.sweepAbandonedUploads(3_600_000)).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await store.sweepAbandonedUploads(1000)).toBe(2);
    expect((await s3.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).toEqual(
      [],
    );
    expect(
      (await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'p/tmp/' }))).Contents ?? [],
    ).toEqual([]);
    expect(await store.size(kept.digest)).toBe(6);
  });
});

describe('layer cache', () => {
  it('keeps the most recently used layers within its cap and re-fetches an evicted one', async () => {
    const cache = new LayerCache(join(scratch(), 'cache'), 2 * MiB);
    const store = new FileBlobStore(scratch());
    const [a, b, c] = [randomBytes(900_000), randomBytes(900_000), randomBytes(900_000)];
    const blobs = [a, b, c];
    for (const data of blobs) await store.put(source(data));
    let fetched = 0;
    const get = async (digest: string) => {
      const staging = await store.openStaging();
      const path = await cache.file(digest, staging, () => {
        fetched += 1;
        return store.open(digest);
      });
      const bytes = readFileSync(path as string);
      await staging.discard();
      return bytes;
    };
    expect((await get(digestOf(a))).equals(a)).toBe(true);
    expect((await get(digestOf(b))).equals(b)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await get(digestOf(a))).equals(a)).toBe(true); // a hit: 0 is now the most recent
    expect(fetched).toBe(2);
    expect((await get(digestOf(c))).equals(c)).toBe(true); // evicts 1, the least recently used
    expect(await cache.usedBytes()).toBeLessThanOrEqual(2 * MiB);
    expect((await get(digestOf(a))).equals(a)).toBe(true);
    expect(fetched).toBe(3);
    expect((await get(digestOf(b))).equals(b)).toBe(true);
    expect(fetched).toBe(4);
  });

  it('refuses a fetched layer whose bytes do not match its digest and caches nothing', async () => {
    const cache = new LayerCache(join(scratch(), 'cache'), 2 * MiB);
    const store = new FileBlobStore(scratch());
    const staging = await store.openStaging();
    const claimed = digestOf(Buffer.from('the real layer'));
    await expect(
      cache.file(claimed, staging, () => Promise.resolve(Readable.from([Buffer.from('tampered')]))),
    ).rejects.toThrow(BlobDigestMismatchError);
    expect(await cache.usedBytes()).toBe(0);
    await staging.discard();
  });
});

describe('blob store configuration', () => {
  it('reads BLOB_STORE and the standard AWS variables, and names what is wrong', () => {
    expect(loadBlobStoreConfig({}).kind).toBe('file');
    const config = loadBlobStoreConfig({
      BLOB_STORE: 's3://ferry-blobs/prod/eu',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9000',
      AWS_DEFAULT_REGION: 'eu-west-1',
      BLOB_S3_FORCE_PATH_STYLE: 'true',
    });
    expect(config).toMatchObject({
      kind: 's3',
      bucket: 'ferry-blobs',
      prefix: 'prod/eu/',
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true,
      downloads: 'redirect',
    });
    expect(createBlobStore(config, scratch())).toBeInstanceOf(S3BlobStore);
    expect(createBlobStore(loadBlobStoreConfig({}), scratch())).toBeInstanceOf(FileBlobStore);
    expect(() => loadBlobStoreConfig({ BLOB_STORE: 'ftp://x' })).toThrow(/BLOB_STORE="ftp:\/\/x"/);
    expect(() => loadBlobStoreConfig({ BLOB_STORE: 's3://B' })).toThrow(/BLOB_STORE/);
    expect(() => loadBlobStoreConfig({ BLOB_STORE: 's3://ok-bucket/a b' })).toThrow(/prefix/);
    expect(() => loadBlobStoreConfig({ BLOB_DOWNLOADS: 'teleport' })).toThrow(/BLOB_DOWNLOADS/);
    expect(() => loadBlobStoreConfig({ BLOB_PRESIGN_SECONDS: '1' })).toThrow(/BLOB_PRESIGN_SECONDS/);
  });
});
