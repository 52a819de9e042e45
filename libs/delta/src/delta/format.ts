import { DeltaCorruptError, DeltaFormatError, DeltaUnsupportedVersionError } from './errors';

/** The eight bytes every Ferry delta starts with. */
export const DELTA_MAGIC = Buffer.from('FERRYDLT', 'latin1');
/** The format version this code writes; it reads this one and every earlier one. */
export const DELTA_VERSION = 3;
/** Versions the decoder reads. */
export const READABLE_VERSIONS: readonly number[] = [1, 2, 3];
/** Magic (8) + version (1) + flags (1) + reserved (2) + header length (4). */
export const PREFIX_SIZE = 16;
/** sha256 of every byte before it. */
export const TRAILER_SIZE = 32;
/** No real header comes near this; it keeps a corrupt length from allocating gigabytes. */
export const MAX_HEADER_SIZE = 1 << 20;
export const MAX_BASES = 255;
/** Most INFLATE operations (base members unpacked to scratch files) one delta may hold. */
export const MAX_INFLATED = 4096;
/**
 * Deflate cannot shrink data by more than this (a 258-byte match in one bit, plus block
 * overhead), so a DEFLATE block declaring more input than this many times its output lies.
 */
export const MAX_DEFLATE_RATIO = 1032;

/** Operation kinds in the ops section; the values are part of the format. */
export enum OpKind {
  Copy = 1,
  Insert = 2,
  Patch = 3,
  Zero = 4,
  /** Version 3: unpacks a gzip'd base member to a scratch file, usable as one more base. */
  Inflate = 5,
  /** Version 3: the operations after it write into a deflate stream, whose output is target bytes. */
  Deflate = 6,
}

export const OP_KIND_NAMES: Record<OpKind, string> = {
  [OpKind.Copy]: 'copy',
  [OpKind.Insert]: 'insert',
  [OpKind.Patch]: 'patch',
  [OpKind.Zero]: 'zero',
  [OpKind.Inflate]: 'inflate',
  [OpKind.Deflate]: 'deflate',
};

/** Kinds each version may use. */
export function opKindsOf(version: number): OpKind[] {
  const kinds = [OpKind.Copy, OpKind.Insert, OpKind.Patch, OpKind.Zero];
  return version >= 3 ? [...kinds, OpKind.Inflate, OpKind.Deflate] : kinds;
}

export interface SectionInfo {
  /** Bytes of the brotli stream in the file. */
  compressedSize: number;
  /** Bytes after decompression; the decoder requires exactly this many. */
  rawSize: number;
}

/**
 * Version 2 keeps each field of the operations in its own stream (after the three sections of
 * version 1, whose `ops` section then holds only the kind bytes), so the entropy coder models
 * base indexes, offsets, lengths and the three parts of bsdiff controls each on its own.
 */
export const FIELD_NAMES = ['bases', 'offsets', 'lengths', 'adds', 'extras', 'seeks'] as const;
export type FieldName = (typeof FIELD_NAMES)[number];

export interface DeltaHeader {
  version: number;
  targetDigest: string;
  targetSize: number;
  bases: { digest: string; size: number }[];
  opCount: number;
  /**
   * Version 3: bytes all operations write together: target bytes outside DEFLATE blocks plus
   * the bytes fed to deflate inside them. Earlier versions: the target size.
   */
  produced: number;
  ops: SectionInfo;
  diff: SectionInfo;
  literal: SectionInfo;
  /** Version 2 only: one stream per operation field. */
  fields?: Record<FieldName, SectionInfo>;
}

export const SECTION_NAMES = ['ops', 'diff', 'literal'] as const;
export type SectionName = (typeof SECTION_NAMES)[number] | FieldName;

/** Every section of a delta of `version`, in file order. */
export function sectionNames(version: number): SectionName[] {
  return version >= 2 ? [...SECTION_NAMES, ...FIELD_NAMES] : [...SECTION_NAMES];
}

/** A section's sizes, whichever version holds it. */
export function sectionInfo(header: DeltaHeader, name: SectionName): SectionInfo {
  if (name === 'ops' || name === 'diff' || name === 'literal') return header[name];
  const info = header.fields?.[name];
  if (!info) throw new DeltaCorruptError(`delta header: no ${name} section in version ${header.version}`);
  return info;
}

/**
 * Largest brotli window (log2 bytes) the decoder accepts per section, so its memory is bounded
 * by a constant whatever the delta says. Version 2: 4 MiB for literals, 1 MiB for diff bytes,
 * 256 KiB for the kinds and each field stream: 6.75 MiB of windows at most. Version 1 deltas were written with windows up to 4 MiB in each of their 3 sections.
 */
export function maxWindowBits(name: SectionName, version: number): number {
  if (version < 2 || name === 'literal') return 22;
  return name === 'diff' ? 20 : 18;
}

/** Header body size for a delta with `baseCount` bases. */
export function headerBodySize(baseCount: number, version = DELTA_VERSION): number {
  return 32 + 8 + 2 + baseCount * 40 + 8 + (version >= 3 ? 8 : 0) + sectionNames(version).length * 16;
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
  const body = headerBodySize(header.bases.length, header.version);
  const buf = Buffer.alloc(PREFIX_SIZE + body);
  DELTA_MAGIC.copy(buf, 0);
  buf.writeUInt8(header.version, 8);
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
  if (header.version >= 3) o = writeU64(buf, header.produced, o);
  for (const name of sectionNames(header.version)) {
    const section = sectionInfo(header, name);
    o = writeU64(buf, section.compressedSize, o);
    o = writeU64(buf, section.rawSize, o);
  }
  return buf;
}

/** Parses the 16-byte prefix; returns the format version and the header body length. */
export function decodePrefix(prefix: Buffer): { version: number; bodySize: number } {
  if (prefix.length < PREFIX_SIZE || !prefix.subarray(0, 8).equals(DELTA_MAGIC)) {
    throw new DeltaFormatError('not a Ferry delta (bad magic)');
  }
  const version = prefix.readUInt8(8);
  if (!READABLE_VERSIONS.includes(version)) throw new DeltaUnsupportedVersionError(version);
  if (prefix.readUInt8(9) !== 0 || prefix.readUInt16LE(10) !== 0) {
    throw new DeltaUnsupportedVersionError(version);
  }
  const bodySize = prefix.readUInt32LE(12);
  if (bodySize < headerBodySize(1, version) || bodySize > MAX_HEADER_SIZE) {
    throw new DeltaCorruptError(`delta header: impossible header length ${bodySize}`);
  }
  return { version, bodySize };
}

/** Parses the header body that follows the prefix. */
export function decodeHeaderBody(body: Buffer, version: number): DeltaHeader {
  let o = 0;
  const targetDigest = body.subarray(o, o + 32).toString('hex');
  o += 32;
  const targetSize = readU64(body, o, 'target size');
  o += 8;
  const baseCount = body.readUInt16LE(o);
  o += 2;
  if (baseCount < 1 || baseCount > MAX_BASES || headerBodySize(baseCount, version) !== body.length) {
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
  let produced = targetSize;
  if (version >= 3) {
    produced = readU64(body, o, 'produced size');
    o += 8;
  }
  const sections: SectionInfo[] = [];
  for (const name of sectionNames(version)) {
    sections.push({
      compressedSize: readU64(body, o, `${name} compressed size`),
      rawSize: readU64(body, o + 8, `${name} raw size`),
    });
    o += 16;
  }
  const [ops, diff, literal, ...rest] = sections as [SectionInfo, SectionInfo, SectionInfo, ...SectionInfo[]];
  const header: DeltaHeader = {
    version,
    targetDigest,
    targetSize,
    bases,
    opCount,
    produced,
    ops,
    diff,
    literal,
  };
  if (version >= 2)
    header.fields = Object.fromEntries(FIELD_NAMES.map((name, i) => [name, rest[i]!])) as Record<
      FieldName,
      SectionInfo
    >;
  checkDeclaredSizes(header);
  return header;
}

/**
 * Sizes a header can declare only if it lies, refused before any section is read, so a few
 * hundred crafted bytes cannot buy unbounded work: every operation but an INFLATE writes at
 * least one byte (zero-length operations are refused), so there are at most as many operations
 * as bytes produced (the target size before version 3) plus the INFLATE cap, and each takes at
 * least two bytes of the ops section; literal bytes are produced bytes; a diff record (zero
 * count, byte count, bytes) expands to at least a third of its length; and deflate turns at
 * most MAX_DEFLATE_RATIO produced bytes into one target byte.
 */
export function checkDeclaredSizes(header: DeltaHeader): void {
  const lie = (what: string) => new DeltaCorruptError(`delta header: ${what}`);
  const produced = header.produced;
  if (produced > MAX_DEFLATE_RATIO * header.targetSize + MAX_DEFLATE_RATIO)
    throw lie(`${produced} bytes produced cannot deflate into a ${header.targetSize}-byte target`);
  const maxOps = produced + (header.version >= 3 ? MAX_INFLATED : 0);
  if (header.opCount > maxOps)
    throw lie(`${header.opCount} operations cannot build a ${header.targetSize}-byte target`);
  if (!header.fields && header.opCount * 2 > header.ops.rawSize)
    throw lie(`${header.opCount} operations do not fit in ${header.ops.rawSize} bytes`);
  if (header.fields && header.opCount !== header.ops.rawSize)
    throw lie(`${header.opCount} operations need ${header.opCount} kind bytes, not ${header.ops.rawSize}`);
  if (header.literal.rawSize > produced)
    throw lie(`${header.literal.rawSize} literal bytes exceed the ${produced} bytes produced`);
  if (header.diff.rawSize > 3 * produced)
    throw lie(`${header.diff.rawSize} diff bytes exceed what ${produced} bytes produced can use`);
  if (header.fields) {
    // At most 8 bytes a varint; an operation has at most 1 base, 2 offsets and 3 lengths, and
    // every control but one in a row of empty ones writes a produced byte.
    const controls = 2 * produced + header.opCount;
    const most: Record<FieldName, number> = {
      bases: 8 * header.opCount,
      offsets: 16 * header.opCount,
      lengths: 24 * header.opCount,
      adds: 8 * controls,
      extras: 8 * controls,
      seeks: 8 * controls,
    };
    for (const name of FIELD_NAMES) {
      if (header.fields[name].rawSize > most[name])
        throw lie(
          `${header.fields[name].rawSize} bytes of ${name} exceed what ${header.opCount} operations can use`,
        );
    }
  }
}

/** Total file size a delta with this header must have. */
export function expectedDeltaSize(header: DeltaHeader): number {
  let size = PREFIX_SIZE + headerBodySize(header.bases.length, header.version) + TRAILER_SIZE;
  for (const name of sectionNames(header.version)) size += sectionInfo(header, name).compressedSize;
  return size;
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
