import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import {
  applyDelta,
  DeltaCorruptError,
  DeltaError,
  DeltaNoSpaceError,
  DeltaTargetMismatchError,
  encodeDelta,
} from '.';
import {
  craftDelta,
  OpsBuilder,
  reheader,
  toVersion1,
  toVersion2,
  type CraftedHeader,
  type CraftedSections,
  type HeaderLies,
} from './testing/craft';
import { packDeflateParams } from './deflate-stream';
import { noise, prose, removeDir, scratchDir, sha256Hex, writeTar } from './testing/fixtures';

const TiB = 2 ** 40;
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

let dir: string;
let base: string;
let baseDigest: string;
let baseSize: number;

beforeEach(async () => {
  dir = await scratchDir('ferry-limits-');
  base = join(dir, 'base.tar');
  await writeTar(base, [
    { name: 'a.txt', data: prose(50_000, 2) },
    { name: 'b.bin', data: noise(20_000, 3) },
  ]);
  const bytes = await readFile(base);
  baseDigest = sha(bytes);
  baseSize = bytes.length;
  await mkdir(join(dir, 'out'));
});
afterEach(async () => {
  await removeDir(dir);
});

/** Writes a crafted delta and applies it; resolves to the error and checks nothing was left behind. */
async function refused(delta: Buffer, expected?: { digest?: string; size?: number }): Promise<DeltaError> {
  const file = join(dir, 'crafted.delta');
  await writeFile(file, delta);
  const error = await applyDelta({
    bases: [base],
    delta: file,
    out: join(dir, 'out', 'layer.tar'),
    ...(expected ? { expected } : {}),
  }).then(
    () => {
      throw new Error('the crafted delta was applied');
    },
    (e: unknown) => e as DeltaError,
  );
  expect(await readdir(join(dir, 'out'))).toEqual([]);
  return error;
}

const header = (targetSize: number, opCount: number) => ({
  targetDigest: sha('some layer'),
  targetSize,
  bases: [{ digest: baseDigest, size: baseSize }],
  opCount,
});

describe.each([1, 2, 3])('decoder limits against tiny crafted deltas (format version %i)', (version) => {
  const craft = (h: CraftedHeader, sections: CraftedSections, lies: HeaderLies = {}) =>
    craftDelta(h, sections, lies, version);

  it('refuses a few hundred bytes declaring a 1 TiB target when the caller expects another size, before writing', async () => {
    const delta = craft(header(TiB, 1), { ops: new OpsBuilder().zero(TiB).build() });
    expect(delta.length).toBeLessThan(320);
    const error = await refused(delta, { size: 4096 });
    expect(error).toBeInstanceOf(DeltaTargetMismatchError);
    expect(error.message).toContain(`${TiB} bytes`);
  });

  it('refuses a declared target larger than the free space, before writing', async () => {
    // 4 PiB: more than any test machine has free, so the refusal cannot depend on the disk.
    const huge = 2 ** 52;
    const error = await refused(craft(header(huge, 1), { ops: new OpsBuilder().zero(huge).build() }));
    expect(error).toBeInstanceOf(DeltaNoSpaceError);
    expect(error.code).toBe('DELTA_NO_SPACE');
  });

  it('refuses a delta whose header names another target than the one asked for', async () => {
    const target = Buffer.alloc(1000, 7);
    const ops = new OpsBuilder().insert(1000);
    const delta = craft(
      { ...header(1000, ops.count), targetDigest: sha(target) },
      { ops: ops.build(), literal: target },
    );
    const error = await refused(delta, { digest: `sha256:${sha('the layer I want')}`, size: 1000 });
    expect(error).toBeInstanceOf(DeltaTargetMismatchError);
    expect(error.message).toContain(`rebuilds sha256:${sha(target)}`);
    // The same delta applies when it is what the caller asked for.
    const out = join(dir, 'out', 'ok.tar');
    await applyDelta({
      bases: [base],
      delta: join(dir, 'crafted.delta'),
      out,
      expected: { digest: `sha256:${sha(target)}`, size: 1000 },
    });
    expect(await sha256Hex(out)).toBe(sha(target));
  });

  it('refuses zero-length operations at the first one instead of spinning through 200,000', async () => {
    for (const make of [
      (b: OpsBuilder) => b.zero(0),
      (b: OpsBuilder) => b.insert(0),
      (b: OpsBuilder) => b.copy(0, 0, 0),
      (b: OpsBuilder) => b.patch(0, 0, 10, 0, 0, []),
    ]) {
      const ops = new OpsBuilder();
      for (let i = 0; i < 200_000; i++) make(ops);
      const delta = craft(header(1_000_000, ops.count), { ops: ops.build() });
      expect(delta.length).toBeLessThan(2000);
      const error = await refused(delta);
      expect(error).toBeInstanceOf(DeltaCorruptError);
      expect(error.message).toMatch(/length zero/);
    }
  });

  it('refuses a patch of a million controls that write nothing', async () => {
    const controls: number[] = [];
    for (let i = 0; i < 1_000_000; i++) controls.push(0, 0, 0);
    controls.push(1, 0, 0);
    const ops = new OpsBuilder().patch(0, 0, 10, 0, 1, controls);
    const delta = craft(header(1, ops.count), { ops: ops.build(), diff: Buffer.from([0, 1, 5]) });
    const error = await refused(delta);
    expect(error).toBeInstanceOf(DeltaCorruptError);
    // Version 2 declares the controls' stream sizes: a million controls cannot fit a 1-byte target.
    expect(error.message).toMatch(version === 1 ? /consecutive empty controls/ : /bytes of adds exceed/);
  });

  it('refuses empty run-length records in the diff section', async () => {
    const records = Buffer.concat([Buffer.alloc(2_000_000, 0), Buffer.from([0, 1, 5])]);
    const ops = new OpsBuilder().patch(0, 0, 10, 0, 1, [1, 0, 0]);
    const error = await refused(
      craft(header(1, ops.count), { ops: ops.build(), diff: records }, { diffRaw: 3 }),
    );
    expect(error).toBeInstanceOf(DeltaCorruptError);
    const honest = await refused(craft(header(1_000_000, ops.count), { ops: ops.build(), diff: records }));
    expect(honest).toBeInstanceOf(DeltaCorruptError);
    expect(honest.message).toMatch(/empty run-length record/);
  });

  it('bounds the operation count by the target size: a billion operations for a small target are refused from the header', async () => {
    const ops = new OpsBuilder().zero(1000);
    const delta = craft(header(1000, 1), { ops: ops.build() }, { opCount: 1e9, opsRaw: 2e9 });
    const error = await refused(delta);
    expect(error).toBeInstanceOf(DeltaCorruptError);
    expect(error.message).toMatch(/1000000000 operations cannot build a 1000-byte target/);
    // A billion operations for a billion-byte target are plausible; the caller's size refuses them.
    const big = craft(
      header(1e9, 1),
      { ops: ops.build() },
      { opCount: 1e9, opsRaw: version === 1 ? 2e9 : 1e9 },
    );
    expect(await refused(big, { size: 1000 })).toBeInstanceOf(DeltaTargetMismatchError);
  });

  it('refuses headers whose section sizes cannot fit the target', async () => {
    const ops = new OpsBuilder().insert(10);
    const literal = Buffer.alloc(10, 1);
    for (const lies of [{ literalRaw: 11 }, { diffRaw: 31 }, { opsRaw: version === 1 ? 1 : 2 }]) {
      const error = await refused(craft(header(10, ops.count), { ops: ops.build(), literal }, lies));
      expect(error).toBeInstanceOf(DeltaCorruptError);
      expect(error.message).toMatch(/^delta header:/);
    }
  });

  it('refuses a real delta whose header was edited to claim another size, even with a valid checksum', async () => {
    const target = join(dir, 'target.tar');
    await writeTar(target, [{ name: 'a.txt', data: prose(60_000, 2) }]);
    const good = join(dir, 'good.delta');
    await encodeDelta({ bases: [base], target, out: good });
    const real = await readFile(good);
    const size = (await readFile(target)).length;
    const expected = { digest: await sha256Hex(target), size };
    for (const lie of [size + 1, size - 1, TiB]) {
      const edited = reheader(real, (h) => (h.targetSize = lie));
      expect(await refused(edited, expected)).toBeInstanceOf(DeltaTargetMismatchError);
      // Without the caller's size, the decoder's own checks still refuse it before the rename.
      if (lie !== TiB) expect(await refused(edited)).toBeInstanceOf(DeltaError);
    }
  });
});

describe('format version 2 streams', () => {
  const craft2 = (h: CraftedHeader, sections: CraftedSections, lies: HeaderLies = {}) =>
    craftDelta(h, sections, lies, 2);

  it('refuses field streams larger than the operations can use, from the header', async () => {
    const ops = new OpsBuilder().patch(0, 0, 10, 0, 1, [1, 0, 0]);
    for (const name of ['bases', 'offsets', 'lengths', 'adds', 'extras', 'seeks'] as const) {
      const lie = { fieldsRaw: { [name]: 1e12 } };
      const error = await refused(
        craft2(header(1, ops.count), { ops: ops.build(), diff: Buffer.from([0, 1, 5]) }, lie),
      );
      expect(error).toBeInstanceOf(DeltaCorruptError);
      expect(error.message).toContain(`bytes of ${name} exceed`);
    }
  });

  it('refuses a kind stream whose length is not the operation count', async () => {
    const ops = new OpsBuilder().zero(10);
    const error = await refused(craft2(header(10, ops.count), { ops: ops.build() }, { opsRaw: 5 }));
    expect(error).toBeInstanceOf(DeltaCorruptError);
    expect(error.message).toMatch(/need 1 kind bytes/);
  });

  it('refuses a field stream that ends early or keeps unused bytes', async () => {
    // Declared one byte longer than its brotli stream: the stream ends early.
    const ops = new OpsBuilder().patch(0, 0, 10, 0, 2, [1, 1, 0]);
    const sections = { ops: ops.build(), diff: Buffer.from([0, 1, 5]), literal: Buffer.from([9]) };
    const short = await refused(craft2(header(2, ops.count), sections, { fieldsRaw: { seeks: 2 } }));
    expect(short).toBeInstanceOf(DeltaCorruptError);
    expect(short.message).toMatch(/seeks section: (ends early|shorter than declared)/);
    // An extra seek nobody reads.
    const extra = new OpsBuilder().patch(0, 0, 10, 0, 2, [1, 1, 0]).build();
    const withSpare = Buffer.concat([extra, Buffer.from([1, 0, 0, 0])]);
    const unused = await refused(craft2(header(2, 1), { ...sections, ops: withSpare }));
    expect(unused).toBeInstanceOf(DeltaError);
  });

  it('refuses a stream whose brotli window exceeds what its section may use, before any output', async () => {
    const target = Buffer.alloc(1000, 7);
    const ops = new OpsBuilder().insert(1000);
    const delta = craft2(
      { ...header(1000, ops.count), targetDigest: sha(target) },
      { ops: ops.build(), literal: target },
      { windowBits: 24 },
    );
    const error = await refused(delta);
    expect(error).toBeInstanceOf(DeltaCorruptError);
    expect(error.message).toMatch(/ops section asks for a 2\^24-byte brotli window \(at most 2\^18\)/);
  });

  it.each([1, 2])(
    "still applies a version %i delta: the encoder's delta rewritten in that version rebuilds the same layer",
    async (version) => {
      const target = join(dir, 'target.tar');
      await writeTar(target, [
        { name: 'a.txt', data: Buffer.concat([prose(30_000, 2), prose(20_000, 5)]) },
        { name: 'b.bin', data: noise(20_000, 3) },
        { name: 'c.txt', data: prose(5_000, 9) },
      ]);
      const v3 = join(dir, 'v3.delta');
      await encodeDelta({ bases: [base], target, out: v3 });
      const bytes = await readFile(v3);
      expect(bytes[8]).toBe(3);
      const older = version === 1 ? toVersion1(bytes) : toVersion2(bytes);
      expect(older[8]).toBe(version);
      await writeFile(join(dir, 'older.delta'), older);
      const out = join(dir, 'out', 'from-older.tar');
      const result = await applyDelta({ bases: [base], delta: join(dir, 'older.delta'), out });
      expect(result.digest).toBe(await sha256Hex(target));
      expect(await sha256Hex(out)).toBe(await sha256Hex(target));
    },
  );
});

describe('format version 3: INFLATE and DEFLATE against crafted deltas', () => {
  const raw = prose(100_000, 3);
  const gz = gzipSync(raw, { level: 9 });
  /** Node's zlib at level 9, which Ferry's deflate rebuilds with these settings. */
  const level9 = packDeflateParams({ level: 9, memLevel: 8, windowBits: 15, strategy: 0, legacyHash: false });
  const body = gz.subarray(10, gz.length - 8);
  let gzBase: string;
  let gzHeader: CraftedHeader;
  let bodyAt: number;

  beforeEach(async () => {
    gzBase = join(dir, 'gz-base.tar');
    await writeTar(gzBase, [
      { name: 'note.txt', data: prose(3000, 1) },
      { name: 'pkg.tgz', data: gz },
    ]);
    const bytes = await readFile(gzBase);
    bodyAt = bytes.indexOf(gz) + 10;
    gzHeader = {
      targetDigest: sha(body),
      targetSize: body.length,
      bases: [{ digest: sha(bytes), size: bytes.length }],
      opCount: 0,
      produced: raw.length,
    };
  });

  const craft3 = (ops: OpsBuilder, h: Partial<CraftedHeader> = {}, lies: HeaderLies = {}) =>
    craftDelta({ ...gzHeader, opCount: ops.count, ...h }, { ops: ops.build() }, lies, 3);
  /** Applies against the gzip'd base; resolves to the error, after checking nothing was left behind. */
  const refused3 = async (delta: Buffer): Promise<DeltaError> => {
    const file = join(dir, 'crafted3.delta');
    await writeFile(file, delta);
    const error = await applyDelta({ bases: [gzBase], delta: file, out: join(dir, 'out', 'layer.tar') }).then(
      () => {
        throw new Error('the crafted delta was applied');
      },
      (e: unknown) => e as DeltaError,
    );
    expect(error).toBeInstanceOf(DeltaError);
    expect(await readdir(join(dir, 'out'))).toEqual([]);
    expect((await readdir(dir)).filter((name) => name.includes('inflated'))).toEqual([]);
    return error;
  };
  const good = () => new OpsBuilder().inflate(0, bodyAt, body.length, raw.length);

  it('rebuilds a deflate stream from the unpacked base member (control)', async () => {
    const file = join(dir, 'good3.delta');
    await writeFile(file, craft3(good().deflate(level9, raw.length, body.length).copy(1, 0, raw.length)));
    const out = join(dir, 'out', 'layer.tar');
    await applyDelta({ bases: [gzBase], delta: file, out });
    expect((await readFile(out)).equals(body)).toBe(true);
    expect((await readdir(dir)).filter((name) => name.includes('inflated'))).toEqual([]);
  });

  it('refuses INFLATE and DEFLATE in a version 2 delta', async () => {
    for (const ops of [good(), new OpsBuilder().deflate(level9, 10, 10)]) {
      const delta = craftDelta({ ...gzHeader, opCount: ops.count }, { ops: ops.build() }, {}, 2);
      expect((await refused3(delta)).message).toMatch(/unknown kind [56]/);
    }
  });

  it('refuses a DEFLATE block inside another, one left unfinished, and impossible settings', async () => {
    const nested = good().deflate(level9, raw.length, body.length).deflate(level9, raw.length, body.length);
    expect((await refused3(craft3(nested))).message).toMatch(/inside another/);
    const unfinished = good()
      .deflate(level9, raw.length, body.length)
      .copy(1, 0, raw.length - 1);
    expect((await refused3(craft3(unfinished, { produced: raw.length - 1 }))).message).toMatch(/unfinished/);
    const settings = good().deflate(0xfff, raw.length, body.length).copy(1, 0, raw.length);
    expect((await refused3(craft3(settings))).message).toMatch(/impossible deflate settings/);
  });

  it('refuses blocks whose output is not what they declare, or more input than deflate can shrink', async () => {
    const more = good()
      .deflate(level9, raw.length, body.length + 1)
      .copy(1, 0, raw.length);
    expect((await refused3(craft3(more, { targetSize: body.length + 1 }))).message).toMatch(/makes less/);
    const less = good()
      .deflate(level9, raw.length, body.length - 100)
      .copy(1, 0, raw.length);
    expect((await refused3(craft3(less, { targetSize: body.length - 100 }))).message).toMatch(/makes more/);
    // A gigabyte of zeros deflates to about a megabyte, never to ten bytes.
    const bomb = new OpsBuilder().deflate(level9, 2 ** 30, 10).zero(2 ** 30);
    expect((await refused3(craft3(bomb, { targetSize: 10, produced: 2 ** 30 }))).message).toMatch(
      /cannot deflate|deflate into/,
    );
  });

  it('refuses INFLATE of bytes that are not deflate data, of the wrong size, outside its base or beyond its budget', async () => {
    const cases: [OpsBuilder, RegExp, Partial<CraftedHeader>?][] = [
      [new OpsBuilder().inflate(0, 0, 1024, 4096), /not deflate data/],
      [new OpsBuilder().inflate(0, bodyAt, body.length, raw.length - 1), /unpacks more than its/],
      [new OpsBuilder().inflate(0, bodyAt, body.length, raw.length + 1), /unpacks 100000 bytes, not/],
      [new OpsBuilder().inflate(0, bodyAt, 10 ** 9, raw.length), /outside its base/],
      [new OpsBuilder().inflate(1, 0, 10, 100), /missing base 1/],
      [
        new OpsBuilder().inflate(0, bodyAt, body.length, raw.length).insert(10),
        /four times/,
        { produced: 10 },
      ],
      [new OpsBuilder().copy(1, 0, 10), /missing base 1/],
    ];
    for (const [ops, message, h] of cases) {
      const error = await refused3(craft3(ops.insert(1), { targetSize: 1000, produced: 200_000, ...h }));
      expect(error.message).toMatch(message);
    }
  });
});
