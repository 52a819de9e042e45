import { openDelta } from './delta-file';
import { emptyOpStats, type OpStats } from './delta-writer';
import { DeltaCorruptError } from './errors';
import { expectedDeltaSize, OP_KIND_NAMES, OpKind, type DeltaHeader } from './format';
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
  const ops = new SectionReader(
    file,
    delta.offsets.ops,
    header.ops.compressedSize,
    header.ops.rawSize,
    'ops',
  );
  const stats = emptyOpStats();
  let patchControls = 0;
  try {
    for (let n = 0; n < header.opCount; n++) {
      const kind = (await ops.readByte()) as OpKind;
      let bytes: number;
      switch (kind) {
        case OpKind.Copy:
          await ops.readVarint();
          await ops.readVarint();
          bytes = await ops.readVarint();
          break;
        case OpKind.Insert:
        case OpKind.Zero:
          bytes = await ops.readVarint();
          break;
        case OpKind.Patch: {
          for (let i = 0; i < 4; i++) await ops.readVarint();
          await ops.readVarint();
          bytes = 0;
          const controls = await ops.readVarint();
          for (let c = 0; c < controls; c++) {
            bytes += await ops.readVarint();
            bytes += await ops.readVarint();
            await ops.readVarint();
          }
          patchControls += controls;
          break;
        }
        default:
          throw new DeltaCorruptError(`delta operation has unknown kind ${String(kind)}`);
      }
      const entry = stats[OP_KIND_NAMES[kind] as keyof OpStats];
      entry.count++;
      entry.bytes += bytes;
    }
    await ops.expectEnd();
  } finally {
    ops.close();
  }
  const size = expectedDeltaSize(header);
  return { header, size, stats, patchControls };
}
