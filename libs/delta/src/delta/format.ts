import { DeltaCorruptError, DeltaFormatError, DeltaUnsupportedVersionError } from './errors';

/** The eight bytes every Ferry delta starts with. */
export const DELTA_MAGIC = Buffer.from('FERRYDLT', 'latin1');
/** The format version this code writes and reads. */
export const DELTA_VERSION = 1;
/** Magic (8) + version (1) + flags (1) + reserved (2) + header length (4). */
export const PREFIX_SIZE = 16;
/** sha256 of every byte before it. */
export const TRAILER_SIZE = 32;
/** No real header comes near this; it keeps a corrupt length from allocating gigabytes. */
export const MAX_HEADER_SIZE = 1 << 20;
export const MAX_BASES = 255;

/** Operation kinds in the ops section; the values are part of the format. */
export enum OpKind {
  Copy = 1,
  Insert = 2,
  Patch = 3,
  Zero = 4,
}

export const OP_KIND_NAMES: Record<OpKind, string> = {
  [OpKind.Copy]: 'copy',
  [OpKind.Insert]: 'insert',
  [OpKind.Patch]: 'patch',
  [OpKind.Zero]: 'zero',
};

export interface SectionInfo {
  /** Bytes of the brotli stream in the file. */
  compressedSize: number;
  /** Bytes after decompression; the decoder requires exactly this many. */
  rawSize: number;
}

export interface DeltaHeader {
  version: number;
  targetDigest: string;
  targetSize: number;
  bases: { digest: string; size: number }[];
  opCount: number;
  ops: SectionInfo;
  diff: SectionInfo;
  literal: SectionInfo;
}

export const SECTION_NAMES = ['ops', 'diff', 'literal'] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** Header body size for a delta with `baseCount` bases. */
export function headerBodySize(baseCount: number): number {
  return 32 + 8 + 2 + baseCount * 40 + 8 + 3 * 16;
}

function writeU64(buf: Buffer, value: number, offset: number): number {
  buf.writeBigUInt64LE(BigInt(value), offset);
  return offset + 8;
}

function readU64(buf: Buffer, offset: number, what: string): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw new DeltaCorruptError(`delta header: ${what} is too large`);
  return Number(value);
}

/** Serialises the fixed prefix and the header body. */
export function encodeHeader(header: DeltaHeader): Buffer {
  const body = headerBodySize(header.bases.length);
  const buf = Buffer.alloc(PREFIX_SIZE + body);
  DELTA_MAGIC.copy(buf, 0);
  buf.writeUInt8(DELTA_VERSION, 8);
  buf.writeUInt32LE(body, 12);
  let o = PREFIX_SIZE;
  o += Buffer.from(header.targetDigest, 'hex').copy(buf, o);
  o = writeU64(buf, header.targetSize, o);
  o = buf.writeUInt16LE(header.bases.length, o);
  for (const base of header.bases) {
    o += Buffer.from(base.digest, 'hex').copy(buf, o);
    o = writeU64(buf, base.size, o);
  }
  o = writeU64(buf, header.opCount, o);
  for (const section of [header.ops, header.diff, header.literal]) {
    o = writeU64(buf, section.compressedSize, o);
    o = writeU64(buf, section.rawSize, o);
  }
  return buf;
}

/** Parses the 16-byte prefix; returns the header body length. */
export function decodePrefix(prefix: Buffer): number {
  if (prefix.length < PREFIX_SIZE || !prefix.subarray(0, 8).equals(DELTA_MAGIC)) {
    throw new DeltaFormatError('not a Ferry delta (bad magic)');
  }
  const version = prefix.readUInt8(8);
  if (version !== DELTA_VERSION) throw new DeltaUnsupportedVersionError(version);
  if (prefix.readUInt8(9) !== 0 || prefix.readUInt16LE(10) !== 0) {
    throw new DeltaUnsupportedVersionError(version);
  }
  const bodySize = prefix.readUInt32LE(12);
  if (bodySize < headerBodySize(1) || bodySize > MAX_HEADER_SIZE) {
    throw new DeltaCorruptError(`delta header: impossible header length ${bodySize}`);
  }
  return bodySize;
}

/** Parses the header body that follows the prefix. */
export function decodeHeaderBody(body: Buffer): DeltaHeader {
  let o = 0;
  const targetDigest = body.subarray(o, o + 32).toString('hex');
  o += 32;
  const targetSize = readU64(body, o, 'target size');
  o += 8;
  const baseCount = body.readUInt16LE(o);
  o += 2;
  if (baseCount < 1 || baseCount > MAX_BASES || headerBodySize(baseCount) !== body.length) {
    throw new DeltaCorruptError(`delta header: base count ${baseCount} does not fit the header length`);
  }
  const bases: DeltaHeader['bases'] = [];
  for (let i = 0; i < baseCount; i++) {
    const digest = body.subarray(o, o + 32).toString('hex');
    const size = readU64(body, o + 32, 'base size');
    bases.push({ digest, size });
    o += 40;
  }
  const opCount = readU64(body, o, 'operation count');
  o += 8;
  const sections: SectionInfo[] = [];
  for (const name of SECTION_NAMES) {
    sections.push({
      compressedSize: readU64(body, o, `${name} compressed size`),
      rawSize: readU64(body, o + 8, `${name} raw size`),
    });
    o += 16;
  }
  const [ops, diff, literal] = sections as [SectionInfo, SectionInfo, SectionInfo];
  return { version: DELTA_VERSION, targetDigest, targetSize, bases, opCount, ops, diff, literal };
}

/** Total file size a delta with this header must have. */
export function expectedDeltaSize(header: DeltaHeader): number {
  return (
    PREFIX_SIZE +
    headerBodySize(header.bases.length) +
    header.ops.compressedSize +
    header.diff.compressedSize +
    header.literal.compressedSize +
    TRAILER_SIZE
  );
}

/** Appends an unsigned LEB128 varint (values up to 2^53). */
export function pushVarint(out: number[], value: number): void {
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** Zigzag mapping so small negative seeks stay short. */
export function zigzag(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

export function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
}
