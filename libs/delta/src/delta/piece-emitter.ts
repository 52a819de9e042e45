import type { FileHandle } from 'node:fs/promises';

import type { BaseMember } from './candidates';
import type { CoverSearchOptions } from './cover-search';
import type { DeltaWriter } from './delta-writer';
import { patchPiece, readRange, type Piece } from './pieces';
import { isZero, type TarEntry } from './tar-index';

const MiB = 2 ** 20;
/** Target bytes encoded at once for files too large to plan whole. */
export const WINDOW = 8 * MiB;

/**
 * Cover search of one window: every other old position indexed, 16 candidates per lookup. On
 * the next-swc binary (131 MB) this took 1 s per window where bsdiff took 7–17 s, for a delta
 * 2.5 % larger than bsdiff's (a hash chain finds shorter matches than a suffix array in some
 * windows).
 */
export const WINDOW_COVER_SEARCH: CoverSearchOptions = { maxChain: 16, step: 2 };

/**
 * Stage 3 of encoding: turns planned pieces into operations, in target order. Files too large
 * to plan whole are encoded here window by window, so memory stays bounded whatever the file
 * size: each 8 MiB of target is a bsdiff-style patch (cover search) against the 16 MiB of the
 * similar file around the same relative position (adjacent releases of a large binary keep
 * their layout, shifted a little).
 */
export class PieceEmitter {
  /** Base handles the encoder opened itself; the decoder's one inflated base comes after them. */
  private readonly realBases: number;
  /** The encoder's handle of the base member last unpacked by an INFLATE operation. */
  private liveInflated: number | undefined;

  constructor(
    private readonly writer: DeltaWriter,
    private readonly target: FileHandle,
    private readonly bases: FileHandle[],
    private readonly window = WINDOW,
  ) {
    this.realBases = bases.length;
  }

  /** The delta's index of a base the encoder reads as `handle`. */
  private id(handle: number): number {
    if (handle < this.realBases) return handle;
    if (handle !== this.liveInflated) throw new Error(`base ${handle} used outside its DEFLATE block`);
    return this.realBases;
  }

  async emit(pieces: Piece[]): Promise<void> {
    const w = this.writer;
    for (const piece of pieces) {
      switch (piece.kind) {
        case 'copy':
          await w.copy(this.id(piece.base), piece.offset, piece.length);
          break;
        case 'insert':
          await w.insert(piece.data);
          break;
        case 'zero':
          await w.zero(piece.length);
          break;
        case 'patch':
          await w.patch(
            this.id(piece.base),
            piece.offset,
            piece.length,
            piece.controls,
            piece.diff,
            piece.extra,
          );
          break;
        case 'windowed':
          await this.windowed(piece.entry, piece.member);
          break;
        case 'deflate': {
          const inflate = piece.inflate;
          // The decoder holds one unpacked member at a time, as the base after the real ones.
          if (inflate && inflate.handle !== this.liveInflated) {
            await w.inflate(inflate.base, inflate.offset, inflate.length, inflate.rawSize, this.realBases);
            this.liveInflated = inflate.handle;
          }
          await w.deflate(piece.params, piece.rawLength, piece.outLength);
          await this.emit(piece.pieces);
          await w.endDeflate();
          break;
        }
      }
    }
  }

  /** Target bytes `[from, to)` as new bytes (zero runs as ZERO), in 1 MiB steps. */
  async raw(from: number, to: number): Promise<void> {
    for (let at = from; at < to; at += MiB) {
      const data = await readRange(this.target, at, Math.min(MiB, to - at));
      await this.emit(isZero(data) ? [{ kind: 'zero', length: data.length }] : [{ kind: 'insert', data }]);
    }
  }

  private async windowed(entry: TarEntry, member: BaseMember | undefined): Promise<void> {
    const window = this.window;
    for (let at = 0; at < entry.size; at += window) {
      const data = await readRange(this.target, entry.dataOffset + at, Math.min(window, entry.size - at));
      if (!member || isZero(data)) {
        await this.emit(isZero(data) ? [{ kind: 'zero', length: data.length }] : [{ kind: 'insert', data }]);
        continue;
      }
      const centre = Math.floor(((at + data.length / 2) / entry.size) * member.entry.size);
      const length = Math.min(2 * window, member.entry.size);
      const start = Math.max(0, Math.min(member.entry.size - length, centre - length / 2));
      const old = await readRange(this.bases[member.base]!, member.entry.dataOffset + start, length);
      await this.emit([
        patchPiece(old, member.entry.dataOffset + start, member.base, data, WINDOW_COVER_SEARCH),
      ]);
    }
  }
}
