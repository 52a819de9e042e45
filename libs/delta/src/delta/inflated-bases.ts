import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

import type { BaseMember } from './candidates';
import { MAX_INFLATED } from './format';
import { readGzipMember } from './gzip-member';
import type { InflatedMember } from './pieces';

/**
 * The encoder's side of INFLATE: gzip'd base members unpacked to scratch files and appended
 * to the encoder's base handles, so a recompressed target member can be diffed against the old
 * member's contents like against any base file. Each base member is unpacked once.
 */
export class InflatedBases {
  private readonly known = new Map<
    string,
    Promise<{ member: BaseMember; inflate: InflatedMember } | undefined>
  >();
  /** Unpacked members handed out: each becomes at most one INFLATE operation. */
  private uses = 0;

  constructor(
    /** The encoder's base handles; unpacked members are appended. */
    private readonly handles: FileHandle[],
    private readonly scratch: string,
    /** Largest contents unpacked. */
    private readonly maxRaw: number,
    /** Unpacked members handed out at most: the decoder refuses a delta with more INFLATEs. */
    private readonly maxUses = MAX_INFLATED,
  ) {}

  /**
   * `member` unpacked, as a base member of its own, or undefined when it is not exactly one
   * gzip member, unpacks to more than `maxRaw` (or four times `newRaw`: the decoder refuses
   * deltas that unpack more than four times what they produce), or `maxUses` were handed out.
   */
  of(
    member: BaseMember,
    read: () => Promise<Buffer>,
    newRaw: number,
  ): Promise<{ member: BaseMember; inflate: InflatedMember } | undefined> {
    const key = `${member.base}:${member.entry.dataOffset}`;
    let known = this.known.get(key);
    if (!known) {
      known = this.inflate(member, read);
      this.known.set(key, known);
    }
    return known.then((found) => {
      // Later gzip files (an upgrade touching thousands of them) are recompressed without it.
      if (!found || found.inflate.rawSize > 4 * newRaw || this.uses >= this.maxUses) return undefined;
      this.uses++;
      return found;
    });
  }

  private async inflate(
    member: BaseMember,
    read: () => Promise<Buffer>,
  ): Promise<{ member: BaseMember; inflate: InflatedMember } | undefined> {
    if (this.known.size > this.maxUses) return undefined;
    const gz = readGzipMember(await read(), this.maxRaw);
    if (!gz) return undefined;
    const file = join(this.scratch, `inflated-${this.known.size}-${member.base}-${member.entry.dataOffset}`);
    await writeFile(file, gz.raw);
    const handle = this.handles.push(await open(file, 'r')) - 1;
    const size = gz.raw.length;
    return {
      member: { base: handle, entry: { ...member.entry, start: 0, dataOffset: 0, size, end: size } },
      inflate: {
        handle,
        base: member.base,
        offset: member.entry.dataOffset + gz.headerLength,
        length: gz.body.length,
        rawSize: size,
      },
    };
  }
}
