import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';

/** One tar member with the exact byte ranges it occupies. */
export interface TarEntry {
  /** Offset of its first header block, including PAX/GNU extension headers that precede it. */
  start: number;
  /** Offset of its data (just after the last header block). */
  dataOffset: number;
  /** Data bytes (without padding). */
  size: number;
  /** Offset just after its padding. */
  end: number;
  /** Member path after PAX/GNU long-name resolution, without a leading `./` or `/`. */
  path: string;
  /** Tar typeflag character (`0` file, `1` hard link, `5` directory, …). */
  type: string;
  /** sha256 of the header bytes `[start, dataOffset)`. */
  headerHash: string;
  /** sha256 of the data, or '' when empty. */
  contentHash: string;
  /** The data is all zero bytes. */
  zeroData: boolean;
  /** The padding after the data is all zero bytes. */
  zeroPadding: boolean;
}

export interface TarIndex {
  file: string;
  size: number;
  /** sha256 of the whole file: the layer's diffID. */
  digest: string;
  entries: TarEntry[];
  /** Where parsable entries stop (end-of-archive blocks, trailing or unparsable bytes follow). */
  tailOffset: number;
}

const BLOCK = 512;
const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);
/** PAX and GNU long-name payloads larger than this are not believed. */
const MAX_EXTENSION = 1 << 20;

/** True if every byte of `buf` is zero. */
export function isZero(buf: Buffer): boolean {
  for (let o = 0; o < buf.length; o += CHUNK) {
    const part = buf.subarray(o, Math.min(buf.length, o + CHUNK));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/** Reads a file front to back once, hashing every byte it hands out. */
class SequentialReader {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufPos = 0;
  readonly hash = createHash('sha256');

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly onProgress?: (bytes: number) => void,
  ) {}

  private async fill(): Promise<void> {
    const want = Math.min(CHUNK, this.size - this.pos - (this.buf.length - this.bufPos));
    const fresh = Buffer.allocUnsafe(Math.max(0, want));
    const { bytesRead } = await this.fh.read(
      fresh,
      0,
      fresh.length,
      this.pos + (this.buf.length - this.bufPos),
    );
    this.buf = Buffer.concat([this.buf.subarray(this.bufPos), fresh.subarray(0, bytesRead)]);
    this.bufPos = 0;
    if (bytesRead === 0) throw new Error('file shrank while reading');
  }

  /** Next `n` bytes (n small, caller checked they exist). */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length - this.bufPos < n) await this.fill();
    const out = this.buf.subarray(this.bufPos, this.bufPos + n);
    this.bufPos += n;
    this.advance(out);
    return out;
  }

  /** Streams the next `n` bytes through `sink` in chunks. */
  async consume(n: number, sink?: (chunk: Buffer) => void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.bufPos >= this.buf.length) await this.fill();
      const take = Math.min(left, this.buf.length - this.bufPos);
      const chunk = this.buf.subarray(this.bufPos, this.bufPos + take);
      this.bufPos += take;
      this.advance(chunk);
      sink?.(chunk);
      left -= take;
    }
  }

  private advance(chunk: Buffer): void {
    this.hash.update(chunk);
    this.pos += chunk.length;
    this.onProgress?.(chunk.length);
  }
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? buf.length : nul).toString('utf8');
}

function checksumOk(block: Buffer): boolean {
  const stored = parseInt(cString(block.subarray(148, 156)).trim() || 'x', 8);
  if (Number.isNaN(stored)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return sum === stored;
}

/** Octal or GNU base-256 size field; -1 when unusable. */
function parseSize(field: Buffer): number {
  if ((field[0]! & 0x80) !== 0) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value <= Number.MAX_SAFE_INTEGER && field[0] === 0x80 ? value : -1;
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return -1;
  return parseInt(text, 8);
}

function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let o = 0;
  while (o < data.length) {
    const space = data.indexOf(0x20, o);
    if (space < 0) break;
    const len = parseInt(data.subarray(o, space).toString('latin1'), 10);
    if (!(len > 0) || o + len > data.length) break;
    const record = data.subarray(space + 1, o + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    o += len;
  }
  return records;
}

/** Strips `./` and `/` prefixes so `./usr/bin/x` and `usr/bin/x` compare equal. */
export function normaliseMemberPath(path: string): string {
  return path.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
}

/**
 * Indexes a tar file in one sequential pass: every member's byte ranges, header and content
 * hashes, and the sha256 of the whole file. Unparsable bytes end the member list; they stay
 * part of the file (`tailOffset`..`size`) so that deltas still rebuild them.
 */
export async function indexTar(file: string, onProgress?: (bytes: number) => void): Promise<TarIndex> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const reader = new SequentialReader(fh, size, onProgress);
    const entries: TarEntry[] = [];
    let tailOffset = size;
    let pendingStart = -1;
    let headerHash: Hash | undefined;
    let paxPath: string | undefined;
    let paxSize: number | undefined;
    let longName: string | undefined;

    for (;;) {
      const start = reader.pos;
      if (start + BLOCK > size) {
        tailOffset = pendingStart >= 0 ? pendingStart : start;
        break;
      }
      const block = Buffer.from(await reader.read(BLOCK));
      if (isZero(block) || !checksumOk(block)) {
        tailOffset = pendingStart >= 0 ? pendingStart : start;
        break;
      }
      headerHash ??= createHash('sha256');
      headerHash.update(block);
      const type = String.fromCharCode(block[156]!);
      let dataSize = parseSize(block.subarray(124, 136));
      let headerBlocks = 1;
      if (type === 'S' && block[482] !== 0) {
        // Old GNU sparse: extension blocks sit between the header and the data.
        for (;;) {
          if (reader.pos + BLOCK > size) break;
          const ext = Buffer.from(await reader.read(BLOCK));
          headerHash.update(ext);
          headerBlocks++;
          if (ext[504] === 0) break;
        }
      }
      const entryStart = pendingStart >= 0 ? pendingStart : start;
      const isExtension = type === 'x' || type === 'L' || type === 'K';
      if (!isExtension && paxSize !== undefined) dataSize = paxSize;
      const dataOffset = start + headerBlocks * BLOCK;
      const padded = Math.ceil(Math.max(0, dataSize) / BLOCK) * BLOCK;
      if (dataSize < 0 || dataOffset + padded > size || (isExtension && dataSize > MAX_EXTENSION)) {
        tailOffset = entryStart;
        break;
      }
      if (isExtension) {
        const payload = Buffer.from(await reader.read(padded));
        headerHash.update(payload);
        const data = payload.subarray(0, dataSize);
        if (type === 'x') {
          const pax = parsePax(data);
          paxPath = pax.get('path') ?? paxPath;
          const s = pax.get('size');
          if (s !== undefined && /^\d+$/.test(s)) paxSize = Number(s);
        } else if (type === 'L') {
          longName = cString(data);
        }
        if (pendingStart < 0) pendingStart = start;
        continue;
      }
      let name = cString(block.subarray(0, 100));
      if (block.subarray(257, 262).toString('latin1') === 'ustar') {
        const prefix = cString(block.subarray(345, 500));
        if (prefix && type !== 'S') name = `${prefix}/${name}`;
      }
      const content = createHash('sha256');
      let zeroData = true;
      await reader.consume(dataSize, (chunk) => {
        content.update(chunk);
        if (zeroData && !chunk.equals(ZEROS.subarray(0, chunk.length))) zeroData = false;
      });
      const padding = await reader.read(padded - dataSize);
      entries.push({
        start: entryStart,
        dataOffset,
        size: dataSize,
        end: dataOffset + padded,
        path: normaliseMemberPath(paxPath ?? longName ?? name),
        type,
        headerHash: headerHash.digest('hex'),
        contentHash: dataSize > 0 ? content.digest('hex') : '',
        zeroData,
        zeroPadding: isZero(padding),
      });
      pendingStart = -1;
      headerHash = undefined;
      paxPath = undefined;
      paxSize = undefined;
      longName = undefined;
    }
    await reader.consume(size - reader.pos);
    return { file, size, digest: reader.hash.digest('hex'), entries, tailOffset };
  } finally {
    await fh.close();
  }
}
