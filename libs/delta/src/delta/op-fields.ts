import { FIELD_NAMES, type FieldName, type SectionName } from './format';
import type { SectionReader } from './section-reader';

/**
 * Where the decoder reads each field of an operation: in version 1 every field follows its
 * kind byte in the ops section; in version 2 the ops section holds only kind bytes and each
 * field has its own stream (base indexes; offsets and patch starts; lengths and control counts;
 * and the add, extra and seek of bsdiff controls).
 */
export class OpFieldReader {
  private constructor(
    private readonly ops: SectionReader,
    private readonly fields: Record<FieldName, SectionReader>,
  ) {}

  /** `open` creates the reader of one section; version 1 opens only `ops`. */
  static create(version: number, open: (name: SectionName) => SectionReader): OpFieldReader {
    const ops = open('ops');
    const fields = Object.fromEntries(
      FIELD_NAMES.map((name) => [name, version >= 2 ? open(name) : ops]),
    ) as Record<FieldName, SectionReader>;
    return new OpFieldReader(ops, fields);
  }

  kind(): number {
    return this.ops.readByte();
  }

  base(): number {
    return this.fields.bases.readVarint();
  }

  /** A zigzag-coded base offset or patch start. */
  offset(): number {
    return this.fields.offsets.readVarint();
  }

  length(): number {
    return this.fields.lengths.readVarint();
  }

  add(): number {
    return this.fields.adds.readVarint();
  }

  extra(): number {
    return this.fields.extras.readVarint();
  }

  seek(): number {
    return this.fields.seeks.readVarint();
  }

  /** Fails unless every stream was used up exactly. */
  expectEnd(): void {
    for (const reader of new Set([this.ops, ...Object.values(this.fields)])) reader.expectEnd();
  }
}
