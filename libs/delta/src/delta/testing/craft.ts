import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

import {
  decodeHeaderBody,
  decodePrefix,
  encodeHeader,
  FIELD_NAMES,
  OpKind,
  PREFIX_SIZE,
  pushVarint,
  sectionInfo,
  sectionNames,
  TRAILER_SIZE,
  zigzag,
  type DeltaHeader,
  type FieldName,
  type SectionInfo,
  type SectionName,
} from '../format';

/** Raw (uncompressed) section bytes of a hand-made delta. */
export interface CraftedSections {
  ops: Buffer;
  diff?: Buffer;
  literal?: Buffer;
}

/** The header of a hand-made delta; section sizes are filled in unless `lie` replaces them. */
export interface CraftedHeader {
  targetDigest: string;
  targetSize: number;
  bases: { digest: string; size: number }[];
  opCount: number;
  /** Version 3: bytes the operations write; the target size unless given. */
  produced?: number;
}

/** Header fields to write instead of the true ones (to test headers that lie). */
export type HeaderLies = Partial<
  Pick<DeltaHeader, 'targetSize' | 'opCount' | 'produced'> & {
    opsRaw: number;
    diffRaw: number;
    literalRaw: number;
    /** Version 2: raw sizes of field streams. */
    fieldsRaw: Partial<Record<FieldName, number>>;
    /** Brotli window of every section (the decoder caps it per section). */
    windowBits: number;
  }
>;

/**
 * Splits version-1 ops bytes (kind, then its fields) into version 2's kind stream and field
 * streams. An unknown kind ends the split: what follows it goes nowhere (the decoder stops there).
 */
export function splitOps(v1: Buffer): { ops: Buffer; fields: Record<FieldName, Buffer> } {
  const kinds: number[] = [];
  const fields = Object.fromEntries(FIELD_NAMES.map((name) => [name, [] as number[]])) as Record<
    FieldName,
    number[]
  >;
  let i = 0;
  const varint = (to: FieldName) => {
    do fields[to].push(v1[i]!);
    while (v1[i++]! >= 0x80 && i < v1.length);
  };
  while (i < v1.length) {
    const kind = v1[i++]! as OpKind;
    kinds.push(kind);
    if (kind === OpKind.Copy) {
      varint('bases');
      varint('offsets');
      varint('lengths');
    } else if (kind === OpKind.Insert || kind === OpKind.Zero) varint('lengths');
    else if (kind === OpKind.Inflate) {
      varint('bases');
      varint('offsets');
      varint('lengths');
      varint('lengths');
    } else if (kind === OpKind.Deflate) {
      varint('lengths');
      varint('lengths');
      varint('lengths');
    } else if (kind === OpKind.Patch) {
      varint('bases');
      varint('offsets');
      varint('lengths');
      varint('offsets');
      varint('lengths');
      const at = fields.lengths.length;
      varint('lengths');
      let n = 0;
      for (let k = fields.lengths.length - 1; k >= at; k--) n = n * 128 + (fields.lengths[k]! & 0x7f);
      for (let c = 0; c < n && i < v1.length; c++) {
        varint('adds');
        varint('extras');
        varint('seeks');
      }
    } else break;
  }
  return {
    ops: Buffer.from(kinds),
    fields: Object.fromEntries(FIELD_NAMES.map((name) => [name, Buffer.from(fields[name])])) as Record<
      FieldName,
      Buffer
    >,
  };
}

/**
 * Builds a delta file from raw sections with a valid sha256 trailer, so a test reaches the
 * decoder's checks behind the checksum. Brotli makes long repetitive sections tiny: a few
 * hundred bytes can declare a terabyte or a billion operations.
 */
export function craftDelta(
  header: CraftedHeader,
  sections: CraftedSections,
  lies: HeaderLies = {},
  version = 1,
): Buffer {
  const pack = (raw: Buffer | undefined) => {
    const data = raw ?? Buffer.alloc(0);
    const compressed =
      data.length === 0
        ? Buffer.alloc(0)
        : brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_LGWIN]: lies.windowBits ?? 18 } });
    return { data: compressed, rawSize: data.length };
  };
  const split = version >= 2 ? splitOps(sections.ops) : undefined;
  const ops = pack(split ? split.ops : sections.ops);
  const diff = pack(sections.diff);
  const literal = pack(sections.literal);
  const fieldData = split && FIELD_NAMES.map((name) => pack(split.fields[name]));
  const full: DeltaHeader = {
    version,
    targetDigest: header.targetDigest,
    targetSize: lies.targetSize ?? header.targetSize,
    bases: header.bases,
    opCount: lies.opCount ?? header.opCount,
    produced: lies.produced ?? header.produced ?? lies.targetSize ?? header.targetSize,
    ops: { compressedSize: ops.data.length, rawSize: lies.opsRaw ?? ops.rawSize },
    diff: { compressedSize: diff.data.length, rawSize: lies.diffRaw ?? diff.rawSize },
    literal: { compressedSize: literal.data.length, rawSize: lies.literalRaw ?? literal.rawSize },
  };
  if (fieldData) {
    full.fields = Object.fromEntries(
      FIELD_NAMES.map((name, i): [FieldName, SectionInfo] => [
        name,
        {
          compressedSize: fieldData[i]!.data.length,
          rawSize: lies.fieldsRaw?.[name] ?? fieldData[i]!.rawSize,
        },
      ]),
    ) as Record<FieldName, SectionInfo>;
  }
  return withTrailer(
    Buffer.concat([
      encodeHeader(full),
      ops.data,
      diff.data,
      literal.data,
      ...(fieldData ?? []).map((f) => f.data),
    ]),
  );
}

/**
 * Rewrites a version 3 delta without INFLATE or DEFLATE operations as version 2 (the same
 * sections; the header loses its produced size), to check that the decoder still applies it.
 */
export function toVersion2(delta: Buffer): Buffer {
  const { version, bodySize } = decodePrefix(delta.subarray(0, PREFIX_SIZE));
  if (version !== 3) throw new Error(`expected a version 3 delta, got ${version}`);
  const header = decodeHeaderBody(delta.subarray(PREFIX_SIZE, PREFIX_SIZE + bodySize), version);
  const v2: DeltaHeader = { ...header, version: 2, produced: header.targetSize };
  const rest = delta.subarray(PREFIX_SIZE + bodySize, delta.length - TRAILER_SIZE);
  return withTrailer(Buffer.concat([encodeHeader(v2), rest]));
}

/**
 * Rewrites a version 2 or 3 delta without INFLATE or DEFLATE operations as version 1 (every
 * field back after its kind byte in the ops section), to check that the decoder still applies
 * version 1.
 */
export function toVersion1(delta: Buffer): Buffer {
  const { header, sections } = readSections(delta);
  if (header.version !== 2 && header.version !== 3)
    throw new Error(`expected a version 2 or 3 delta, got ${header.version}`);
  const raw = Object.fromEntries(sections.map((section) => [section.name, section.raw]));
  const compressed = Object.fromEntries(sections.map((section) => [section.name, section.compressed]));
  const cursors = Object.fromEntries(FIELD_NAMES.map((name) => [name, 0])) as Record<FieldName, number>;
  const out: number[] = [];
  const take = (name: FieldName): number => {
    const bytes = raw[name]!;
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[cursors[name]++]!;
      out.push(b);
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
  };
  for (const byte of raw.ops!) {
    const kind = byte as OpKind;
    if (kind === OpKind.Inflate || kind === OpKind.Deflate)
      throw new Error('version 1 has no INFLATE or DEFLATE');
    out.push(kind);
    if (kind === OpKind.Copy) (['bases', 'offsets', 'lengths'] as const).forEach(take);
    else if (kind === OpKind.Patch) {
      (['bases', 'offsets', 'lengths', 'offsets', 'lengths'] as const).forEach(take);
      const controls = take('lengths');
      for (let c = 0; c < controls; c++) (['adds', 'extras', 'seeks'] as const).forEach(take);
    } else take('lengths');
  }
  const ops = brotliCompressSync(Buffer.from(out), { params: { [constants.BROTLI_PARAM_LGWIN]: 20 } });
  const v1: DeltaHeader = {
    ...header,
    version: 1,
    produced: header.targetSize,
    ops: { compressedSize: ops.length, rawSize: out.length },
  };
  delete v1.fields;
  return withTrailer(Buffer.concat([encodeHeader(v1), ops, compressed.diff!, compressed.literal!]));
}

/** A delta's header and each section's compressed and raw bytes, in file order. */
export function readSections(delta: Buffer): {
  header: DeltaHeader;
  sections: { name: SectionName; compressed: Buffer; raw: Buffer }[];
} {
  const { version, bodySize } = decodePrefix(delta.subarray(0, PREFIX_SIZE));
  const header = decodeHeaderBody(delta.subarray(PREFIX_SIZE, PREFIX_SIZE + bodySize), version);
  let at = PREFIX_SIZE + bodySize;
  const sections = sectionNames(version).map((name) => {
    const { compressedSize } = sectionInfo(header, name);
    const compressed = delta.subarray(at, at + compressedSize);
    at += compressedSize;
    return {
      name,
      compressed,
      raw: compressedSize === 0 ? Buffer.alloc(0) : brotliDecompressSync(compressed),
    };
  });
  return { header, sections };
}

/**
 * The delta with one section's raw bytes replaced by `edit`'s (recompressed, sizes and trailer
 * fixed), so only the decoder's checks of the operations stand between the change and the disk.
 */
export function rewriteSection(delta: Buffer, name: SectionName, edit: (raw: Buffer) => Buffer): Buffer {
  const { header, sections } = readSections(delta);
  const parts = sections.map((section) => {
    if (section.name !== name) return section.compressed;
    const raw = edit(section.raw);
    const compressed =
      raw.length === 0
        ? Buffer.alloc(0)
        : brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_LGWIN]: 16 } });
    Object.assign(sectionInfo(header, name), { compressedSize: compressed.length, rawSize: raw.length });
    return compressed;
  });
  return withTrailer(Buffer.concat([encodeHeader(header), ...parts]));
}

/** Appends the sha256 trailer over `body`. */
export function withTrailer(body: Buffer): Buffer {
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/**
 * Rewrites header fields of an existing delta and recomputes its trailer: the result passes the
 * checksum, so only the decoder's own checks stand between the lie and the disk.
 */
export function reheader(delta: Buffer, edit: (header: DeltaHeader) => void): Buffer {
  const { version, bodySize } = decodePrefix(delta.subarray(0, PREFIX_SIZE));
  const header = decodeHeaderBodyUnchecked(delta.subarray(PREFIX_SIZE, PREFIX_SIZE + bodySize), version);
  edit(header);
  const rest = delta.subarray(PREFIX_SIZE + bodySize, delta.length - TRAILER_SIZE);
  return withTrailer(Buffer.concat([encodeHeader(header), rest]));
}

/** Header fields as written, even when they would fail the decoder's size checks. */
function decodeHeaderBodyUnchecked(body: Buffer, version: number): DeltaHeader {
  try {
    return decodeHeaderBody(body, version);
  } catch {
    // Parse again field by field: the lies a test wants to keep are exactly what fails above.
    const read = (o: number) => Number(body.readBigUInt64LE(o));
    const baseCount = body.readUInt16LE(40);
    const bases = Array.from({ length: baseCount }, (_, i) => ({
      digest: body.subarray(42 + 40 * i, 74 + 40 * i).toString('hex'),
      size: read(74 + 40 * i),
    }));
    const o = 42 + 40 * baseCount;
    const at = o + (version >= 3 ? 16 : 8);
    const info = (i: number): SectionInfo => ({
      compressedSize: read(at + 16 * i),
      rawSize: read(at + 8 + 16 * i),
    });
    const header: DeltaHeader = {
      version,
      targetDigest: body.subarray(0, 32).toString('hex'),
      targetSize: read(32),
      bases,
      opCount: read(o),
      produced: version >= 3 ? read(o + 8) : read(32),
      ops: info(0),
      diff: info(1),
      literal: info(2),
    };
    if (sectionNames(version).length > 3) {
      header.fields = Object.fromEntries(FIELD_NAMES.map((name, i) => [name, info(3 + i)])) as Record<
        FieldName,
        SectionInfo
      >;
    }
    return header;
  }
}

/** Raw ops-section bytes for hand-written operations. */
export class OpsBuilder {
  private readonly bytes: number[] = [];
  count = 0;

  private op(kind: OpKind, values: number[]): this {
    this.bytes.push(kind);
    for (const v of values) pushVarint(this.bytes, v);
    this.count++;
    return this;
  }

  copy(base: number, relativeOffset: number, length: number): this {
    return this.op(OpKind.Copy, [base, zigzag(relativeOffset), length]);
  }

  insert(length: number): this {
    return this.op(OpKind.Insert, [length]);
  }

  zero(length: number): this {
    return this.op(OpKind.Zero, [length]);
  }

  /** Version 3: unpacks base bytes as the base after the real ones. */
  inflate(base: number, relativeOffset: number, length: number, rawSize: number): this {
    return this.op(OpKind.Inflate, [base, zigzag(relativeOffset), length, rawSize]);
  }

  /** Version 3: the next operations write `rawLength` bytes into a deflate stream (`params` packed). */
  deflate(params: number, rawLength: number, outLength: number): this {
    return this.op(OpKind.Deflate, [params, rawLength, outLength]);
  }

  /** A PATCH with flat (add, extra, seek) controls. */
  patch(
    base: number,
    relativeOffset: number,
    oldLength: number,
    start: number,
    newLength: number,
    controls: number[],
  ): this {
    this.op(OpKind.Patch, [
      base,
      zigzag(relativeOffset),
      oldLength,
      zigzag(start),
      newLength,
      controls.length / 3,
    ]);
    for (let i = 0; i < controls.length; i += 3) {
      pushVarint(this.bytes, controls[i]!);
      pushVarint(this.bytes, controls[i + 1]!);
      pushVarint(this.bytes, zigzag(controls[i + 2]!));
    }
    return this;
  }

  build(): Buffer {
    return Buffer.from(this.bytes);
  }
}
