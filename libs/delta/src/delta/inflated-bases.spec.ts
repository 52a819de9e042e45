import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import type { BaseMember } from './candidates';
import { InflatedBases } from './inflated-bases';
import { readRange } from './pieces';
import { indexTar } from './tar-index';
import { prose, removeDir, scratchDir, writeTar } from './testing/fixtures';

/** The encoder's side of INFLATE: gzip'd base members unpacked once, and never more than the decoder accepts. */
describe('InflatedBases', () => {
  let dir: string;
  let handles: FileHandle[];
  let members: BaseMember[];
  const texts = [prose(20_000, 1), prose(30_000, 2), prose(40_000, 3)];

  beforeEach(async () => {
    dir = await scratchDir('ferry-inflated-');
    const base = join(dir, 'base.tar');
    await writeTar(base, [
      ...texts.map((text, i) => ({ name: `pkg-${i}.tgz`, data: gzipSync(text, { level: 9 }) })),
      { name: 'plain.txt', data: prose(5000, 4) },
    ]);
    handles = [await open(base, 'r')];
    members = (await indexTar(base, () => undefined)).entries.map((entry) => ({ base: 0, entry }));
  });
  afterEach(async () => {
    await Promise.allSettled(handles.map((fh) => fh.close()));
    await removeDir(dir);
  });

  const read = (member: BaseMember) => () =>
    readRange(handles[member.base]!, member.entry.dataOffset, member.entry.size);

  it('unpacks each gzip member once, as a base handle of its own with its contents', async () => {
    const inflated = new InflatedBases(handles, dir, 1 << 20);
    const first = await inflated.of(members[1]!, read(members[1]!), 30_000);
    const again = await inflated.of(members[1]!, read(members[1]!), 30_000);
    expect(first!.member.base).toBe(1);
    expect(again!.member.base).toBe(1);
    expect(handles).toHaveLength(2);
    expect(await readRange(handles[1]!, 0, first!.member.entry.size)).toEqual(texts[1]);
    const tar = await readFile(join(dir, 'base.tar'));
    const gz = gzipSync(texts[1]!, { level: 9 });
    // Where the deflate stream sits in the base: after the 10-byte gzip header, before the trailer.
    expect(first!.inflate).toEqual({
      handle: 1,
      base: 0,
      offset: tar.indexOf(gz) + 10,
      length: gz.length - 18,
      rawSize: texts[1]!.length,
    });
  });

  it('hands out at most as many as the decoder accepts INFLATE operations, then none', async () => {
    const inflated = new InflatedBases(handles, dir, 1 << 20, 2);
    const got = [];
    for (const member of [members[0]!, members[1]!, members[2]!, members[0]!])
      got.push(await inflated.of(member, read(member), 50_000));
    expect(got.map((g) => g?.member.base)).toEqual([1, 2, undefined, undefined]);
  });

  it('refuses what is not gzip, unpacks to more than its cap, or to more than four times the new contents', async () => {
    const inflated = new InflatedBases(handles, dir, 25_000);
    expect(await inflated.of(members[3]!, read(members[3]!), 5000)).toBeUndefined();
    expect(await inflated.of(members[1]!, read(members[1]!), 30_000)).toBeUndefined();
    expect(await inflated.of(members[0]!, read(members[0]!), 4_999)).toBeUndefined();
    expect(await inflated.of(members[0]!, read(members[0]!), 5_000)).toBeDefined();
  });
});
