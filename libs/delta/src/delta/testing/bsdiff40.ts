import Bunzip from 'seek-bzip';

import { DeltaInputError } from '../errors';

/** A bsdiff patch with its three streams decompressed. */
export interface Bsdiff40Patch {
  newSize: number;
  /** Flat (add, extra, seek) triples. */
  controls: number[];
  diff: Buffer;
  extra: Buffer;
}

const MAGIC = 'BSDIFF40';

/** bsdiff's `offtin`: 8-byte little-endian magnitude with the sign in the top bit. */
function offtin(buf: Buffer, offset: number): number {
  const high = buf.readUInt32LE(offset + 4);
  const magnitude = (high & 0x7fffffff) * 2 ** 32 + buf.readUInt32LE(offset);
  if (magnitude > Number.MAX_SAFE_INTEGER) throw new DeltaInputError('BSDIFF40: value out of range');
  return high & 0x80000000 ? -magnitude : magnitude;
}

function bunzip(data: Buffer, what: string): Buffer {
  if (data.length === 0) return Buffer.alloc(0);
  try {
    return Bunzip.decode(data);
  } catch (err) {
    throw new DeltaInputError(`BSDIFF40: cannot decompress ${what} (${String(err)})`);
  }
}

/**
 * Parses a classic BSDIFF40 patch (as written by Debian's bsdiff) and
 * decompresses its bzip2 control, diff and extra streams, so they can be re-encoded into a
 * Ferry PATCH operation.
 */
export function parseBsdiff40(patch: Buffer): Bsdiff40Patch {
  if (patch.length < 32 || patch.subarray(0, 8).toString('latin1') !== MAGIC) {
    throw new DeltaInputError('not a BSDIFF40 patch');
  }
  const ctrlLength = offtin(patch, 8);
  const diffLength = offtin(patch, 16);
  const newSize = offtin(patch, 24);
  if (ctrlLength < 0 || diffLength < 0 || newSize < 0 || 32 + ctrlLength + diffLength > patch.length) {
    throw new DeltaInputError('BSDIFF40: corrupt header');
  }
  const ctrl = bunzip(patch.subarray(32, 32 + ctrlLength), 'control block');
  const diff = bunzip(patch.subarray(32 + ctrlLength, 32 + ctrlLength + diffLength), 'diff block');
  const extra = bunzip(patch.subarray(32 + ctrlLength + diffLength), 'extra block');
  if (ctrl.length % 24 !== 0) throw new DeltaInputError('BSDIFF40: truncated control block');
  const controls: number[] = [];
  let adds = 0;
  let extras = 0;
  for (let o = 0; o < ctrl.length; o += 24) {
    const add = offtin(ctrl, o);
    const ext = offtin(ctrl, o + 8);
    if (add < 0 || ext < 0) throw new DeltaInputError('BSDIFF40: negative length in control block');
    controls.push(add, ext, offtin(ctrl, o + 16));
    adds += add;
    extras += ext;
  }
  if (adds !== diff.length || extras !== extra.length || adds + extras !== newSize) {
    throw new DeltaInputError('BSDIFF40: control block does not match its streams');
  }
  return { newSize, controls, diff, extra };
}
