import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobPath, Downloader } from './downloader';
import { DownloadLedger } from './ledger';
import { createLogger } from './log';
import { ServerApi } from './server-api';

/** A blob server that honours Range and counts the bytes it sends. */
async function blobServer(
  blob: Buffer,
): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const server: Server = createServer((req, res) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = blob.subarray(start);
    sent += body.length;
    res.writeHead(range ? 206 : 200, {
      'content-length': body.length,
      ...(range ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
    });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('agent downloader across power cuts', () => {
  const blob = randomBytes(300_000);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const options = { attempts: 2, retryBaseMs: 10, onBytes: () => undefined };
  let dir: string;
  let server: Awaited<ReturnType<typeof blobServer>>;

  beforeAll(async () => {
    server = await blobServer(blob);
  });
  afterAll(() => server.close());
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-downloader-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const downloader = async (): Promise<[Downloader, DownloadLedger]> => {
    const ledger = await DownloadLedger.open(dir);
    return [new Downloader(new ServerApi(server.url, 'k'), dir, ledger, createLogger('error')), ledger];
  };

  it('fetches each byte once, and a second fetch is served from disk', async () => {
    const [d, ledger] = await downloader();
    const before = server.sent();
    const path = await d.fetch(digest, blob.length, options);
    expect(readFileSync(path).equals(blob)).toBe(true);
    await d.fetch(digest, blob.length, options);
    expect(server.sent() - before).toBe(blob.length);
    expect(ledger.get(digest)).toEqual({ done: blob.length, fetched: blob.length, complete: true });
  });

  it('keeps a blob renamed into place whose completion the cut kept out of the ledger', async () => {
    const [d] = await downloader();
    await d.fetch(digest, blob.length, options);
    // The state a SIGKILL between rename and ledger.complete leaves: whole file, ledger not complete.
    const ledgerFile = join(dir, 'download-ledger.json');
    const state = JSON.parse(readFileSync(ledgerFile, 'utf8')) as {
      blobs: Record<string, { complete: boolean }>;
    };
    state.blobs[digest]!.complete = false;
    writeFileSync(ledgerFile, JSON.stringify(state));
    const [again, ledger] = await downloader();
    const before = server.sent();
    const path = await again.fetch(digest, blob.length, options);
    expect(server.sent() - before).toBe(0);
    expect(readFileSync(path).equals(blob)).toBe(true);
    expect(ledger.get(digest)).toEqual({ done: blob.length, fetched: blob.length, complete: true });
  });

  it('fetches again a final file of the right size whose bytes are wrong', async () => {
    const [d, ledger] = await downloader();
    writeFileSync(blobPath(dir, digest), Buffer.alloc(blob.length, 7));
    const before = server.sent();
    const path = await d.fetch(digest, blob.length, options);
    expect(server.sent() - before).toBe(blob.length);
    expect(readFileSync(path).equals(blob)).toBe(true);
    expect(ledger.get(digest).complete).toBe(true);
  });

  it('resumes a partial file from its recorded length, cutting off unrecorded bytes', async () => {
    const [d, ledger] = await downloader();
    await ledger.advance(digest, 100_000, 100_000);
    // 50 000 bytes written after the last record were never counted: they are cut and fetched again.
    writeFileSync(`${blobPath(dir, digest)}.part`, blob.subarray(0, 150_000));
    const before = server.sent();
    const path = await d.fetch(digest, blob.length, options);
    expect(server.sent() - before).toBe(blob.length - 100_000);
    expect(readFileSync(path).equals(blob)).toBe(true);
    expect(existsSync(`${blobPath(dir, digest)}.part`)).toBe(false);
  });
});
