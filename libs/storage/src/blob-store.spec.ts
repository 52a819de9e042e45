import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { ValidationError } from '@ferry/protocol';
import { BlobDigestMismatchError, MIN_STAGING_STALE_MS, STAGING_HEARTBEAT_MS } from './blob-store';
import { FileBlobStore } from './file-blob-store';

const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The blob store on a real filesystem: what the server and the worker keep layers and deltas in. */
describe('FileBlobStore', () => {
  let dir: string;
  let store: FileBlobStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-blobs-'));
    store = new FileBlobStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const temporaries = () => (existsSync(join(dir, 'tmp')) ? readdirSync(join(dir, 'tmp')) : []);

  it('stores a stream under its sha256 and reads back the same bytes, whole or a range', async () => {
    const data = randomBytes(300_000);
    const { digest, size } = await store.put(Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    expect(digest).toBe(digestOf(data));
    expect(size).toBe(data.length);
    expect(await store.size(digest)).toBe(data.length);
    expect(readFileSync(store.pathOf(digest)).equals(data)).toBe(true);
    expect((await readAll(await store.open(digest))).equals(data)).toBe(true);
    expect(
      (await readAll(await store.open(digest, { start: 10, end: 19 }))).equals(data.subarray(10, 20)),
    ).toBe(true);
    expect(temporaries()).toEqual([]);
  });

  it('keeps one copy of the same content, also when written twice at once', async () => {
    const data = randomBytes(100_000);
    const [a, b] = await Promise.all([store.put(Readable.from([data])), store.put(Readable.from([data]))]);
    expect(a.digest).toBe(b.digest);
    const hex = a.digest.slice(7);
    expect(readdirSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2)))).toEqual([hex]);
    expect(readFileSync(store.pathOf(a.digest)).equals(data)).toBe(true);
    expect(temporaries()).toEqual([]);
  });

  it('refuses content that does not match the announced digest and stores nothing', async () => {
    const data = randomBytes(1000);
    const claimed = digestOf(Buffer.from('something else'));
    await expect(store.put(Readable.from([data]), claimed)).rejects.toThrow(BlobDigestMismatchError);
    expect(await store.size(claimed)).toBeNull();
    expect(await store.size(digestOf(data))).toBeNull();
    expect(temporaries()).toEqual([]);
  });

  it('stores nothing from a stream that fails halfway', async () => {
    async function* upload(): AsyncGenerator<Buffer> {
      yield randomBytes(70_000);
      await new Promise((resolve) => setImmediate(resolve));
      throw new Error('connection reset');
    }
    await expect(store.put(Readable.from(upload()))).rejects.toThrow('connection reset');
    expect(existsSync(join(dir, 'blobs'))).toBe(false);
    expect(temporaries()).toEqual([]);
  });

  it('refuses anything but a sha256 digest as a name (no path tricks)', async () => {
    for (const bad of [
      'sha256:../../etc/passwd',
      `sha256:${'A'.repeat(64)}`,
      'md5:abc',
      '',
      `sha256:${'a'.repeat(63)}`,
    ]) {
      expect(() => store.pathOf(bad)).toThrow(ValidationError);
      await expect(store.size(bad)).rejects.toThrow(ValidationError);
    }
    expect(await store.size(`sha256:${'a'.repeat(64)}`)).toBeNull();
  });

  it('adopts a staged file under its digest, once', async () => {
    const staging = await store.openStaging();
    const data = randomBytes(2000);
    const file = join(staging.path, 'delta');
    writeFileSync(file, data);
    await store.adopt(file, digestOf(data));
    expect(existsSync(file)).toBe(false);
    expect(readFileSync(store.pathOf(digestOf(data))).equals(data)).toBe(true);
    // Adopting the same content again leaves the stored blob as it is.
    writeFileSync(file, data);
    await store.adopt(file, digestOf(data));
    expect(readFileSync(store.pathOf(digestOf(data))).equals(data)).toBe(true);
    await staging.discard();
    expect(existsSync(staging.path)).toBe(false);
  });

  it('sweeps temporary entries untouched for longer than the cutoff and keeps younger ones (another process may own them)', async () => {
    const young = await store.openStaging();
    const old = await store.openStaging();
    await old.discard(); // its heartbeat stops, as a killed process's would
    mkdirSync(old.path);
    const hourAgo = (Date.now() - 3_600_000) / 1000;
    utimesSync(old.path, hourAgo, hourAgo);
    expect(await store.sweepTemporaryFiles(60_000)).toBe(1);
    expect(temporaries()).toEqual([basename(young.path)]);
    await young.discard();
  });

  it('keeps a live staging folder alive with its heartbeat, however old it looked', async () => {
    const live = await store.openStaging();
    const hourAgo = (Date.now() - 3_600_000) / 1000;
    utimesSync(live.path, hourAgo, hourAgo);
    await new Promise((resolve) => setTimeout(resolve, STAGING_HEARTBEAT_MS + 500));
    expect(await store.sweepTemporaryFiles(MIN_STAGING_STALE_MS)).toBe(0);
    expect(existsSync(live.path)).toBe(true);
    await live.discard();
  });

  it('removes every staging folder it still has open at once, for a process about to exit', async () => {
    const first = await store.openStaging();
    const second = await store.openStaging();
    const done = await store.openStaging();
    await done.discard();
    store.discardOpenStagingNow();
    expect([first.path, second.path].filter((path) => existsSync(path))).toEqual([]);
    expect(temporaries()).toEqual([]);
  });

  it('deletes a blob', async () => {
    const { digest } = await store.put(Readable.from([Buffer.from('x')]));
    await store.delete(digest);
    expect(await store.size(digest)).toBeNull();
  });
});
