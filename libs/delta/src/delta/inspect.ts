import { openDelta } from './delta-file';
import { emptyOpStats, type OpStats } from './delta-writer';
import { DeltaCorruptError } from './errors';
import {
  expectedDeltaSize,
  maxWindowBits,
  OP_KIND_NAMES,
  OpKind,
  sectionInfo,
  type DeltaHeader,
} from './format';
import { OpFieldReader } from './op-fields';
import { SectionReader } from './section-reader';

export interface DeltaInfo {
  header: DeltaHeader;
  /** Bytes of the delta file. */
  size: number;
  /** Operation count and target bytes produced, by kind. */
  stats: OpStats;
  /** bsdiff control triples across all patch operations. */
  patchControls: number;
}

/** Reads a delta's header and walks its operations (checksum verified first) to summarise it. */
export async function readDeltaInfo(file: string): Promise<DeltaInfo> {
  const delta = await openDelta(file);
  const { header } = delta;
  const readers: SectionReader[] = [];
  const ops = OpFieldReader.create(header.version, (name) => {
    const info = sectionInfo(header, name);
    const reader = new SectionReader(
      file,
      delta.offsets[name]!,
      info.compressedSize,
      info.rawSize,
      name,
      maxWindowBits(name, header.version),
    );
    readers.push(reader);
    return reader;
  });
  const stats = emptyOpStats();
  let patchControls = 0;
  try {
    for (let n = 0; n < header.opCount; n++) {
      const kind = ops.kind() as OpKind;
      let bytes: number;
      switch (kind) {
        case OpKind.Copy:
          ops.base();
          ops.offset();
          bytes = ops.length();
          break;
        case OpKind.Insert:
        case OpKind.Zero:
          bytes = ops.length();
          break;
        case OpKind.Patch: {
          ops.base();
          ops.offset();
          ops.length();
          ops.offset();
          ops.length();
          bytes = 0;
          const controls = ops.length();
          for (let c = 0; c < controls; c++) {
            bytes += ops.add();
            bytes += ops.extra();
            ops.seek();
          }
          patchControls += controls;
          break;
        }
        case OpKind.Inflate:
          ops.base();
          ops.offset();
          ops.length();
          bytes = ops.length();
          break;
        case OpKind.Deflate:
          ops.length();
          ops.length();
          bytes = ops.length();
          break;
        default:
          throw new DeltaCorruptError(`delta operation has unknown kind ${String(kind)}`);
      }
      const entry = stats[OP_KIND_NAMES[kind] as keyof OpStats];
      entry.count++;
      entry.bytes += bytes;
    }
    ops.expectEnd();
  } finally {
    for (const reader of readers) reader.close();
  }
  const size = expectedDeltaSize(header);
  return { header, size, stats, patchControls };
}
