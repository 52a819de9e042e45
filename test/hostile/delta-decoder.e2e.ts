import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { DeltaError, applyDelta, encodeDelta, type DeltaHeader } from '@ferry/delta';
import { readSections, reheader, rewriteSection } from '../../libs/delta/src/delta/testing/craft';
import { fuzzRuns } from '../support/fuzz';
import { gnuTarLayer } from '../support/hostile-archives';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Property: a delta with flipped, cut or inserted bytes, or a header that lies about sizes behind
 * a valid checksum, either rebuilds exactly the target (a change that changed nothing) or is
 * refused with a DeltaError — and then leaves no output file behind.
 */
describe('delta decoder under hostile input (property-based)', () => {
  let work: string;
  let delta: Buffer;
  let bases: string[];
  let target: Buffer;
  let n = 0;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-fuzz-delta-'));
    const binary = readFileSync('/bin/busybox').subarray(0, 300_000);
    const changed = Buffer.from(binary);
    changed.write('a changed region', 5000);
    // A gzip'd member (as npm packs: Node's zlib at level 9) that changes: the delta unpacks the
    // old one (INFLATE) and deflates the new contents (DEFLATE), so the fuzzing reaches both.
    const docs = Buffer.from(readFileSync('/bin/busybox').subarray(300_000, 400_000).toString('base64'));
    const newDocs = Buffer.concat([
      docs.subarray(0, 50_000),
      Buffer.from('a new line\n'),
      docs.subarray(50_000),
    ]);
    const base = gnuTarLayer(join(work, 'base'), {
      'bin/tool': binary.toString('latin1'),
      'etc/conf': 'x=1\n',
      'share/docs.tgz': gzipSync(docs, { level: 9 }),
    });
    target = gnuTarLayer(join(work, 'target'), {
      'bin/tool': changed.toString('latin1'),
      'etc/conf': 'x=2\n',
      'etc/new': 'hello\n'.repeat(100),
      'share/docs.tgz': gzipSync(newDocs, { level: 9 }),
    });
    writeFileSync(join(work, 'base.tar'), base);
    writeFileSync(join(work, 'target.tar'), target);
    bases = [join(work, 'base.tar')];
    await encodeDelta({ bases, target: join(work, 'target.tar'), out: join(work, 'good.delta') });
    delta = readFileSync(join(work, 'good.delta'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const attempt = async (bytes: Buffer, expected?: { digest: string; size: number }): Promise<boolean> => {
    const path = join(work, `d${++n}`);
    const out = join(work, `out${n}.tar`);
    writeFileSync(path, bytes);
    try {
      await applyDelta({ bases, delta: path, out, ...(expected ? { expected } : {}) });
      expect(sha256(readFileSync(out))).toBe(sha256(target));
    } catch (error) {
      if (!(error instanceof DeltaError))
        throw new Error(`unexpected ${(error as Error).name}: ${(error as Error).message}`);
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(path, { force: true });
      rmSync(out, { force: true });
    }
    return true;
  };

  it('rebuilds the target from the untouched delta', async () => {
    // The control of every property below: no DeltaError is acceptable here.
    expect(delta[8]).toBe(3); // format version 3: the field streams below exist, and INFLATE and DEFLATE
    const kinds = readSections(delta).sections.find((section) => section.name === 'ops')!.raw;
    expect(kinds.includes(5) && kinds.includes(6)).toBe(true);
    const out = join(work, 'control.tar');
    writeFileSync(join(work, 'control.delta'), delta);
    const result = await applyDelta({ bases, delta: join(work, 'control.delta'), out });
    expect(sha256(readFileSync(out))).toBe(sha256(target));
    expect(`sha256:${result.digest}`).toBe(sha256(target));
    rmSync(out);
    rmSync(join(work, 'control.delta'));
  });

  it('refuses headers that lie about sizes behind a valid checksum', async () => {
    // Version 2 adds a stream per operation field: their raw and compressed sizes lie too.
    const sizeFields = [
      'targetSize',
      'baseSize',
      'opCount',
      'produced',
      'opsRaw',
      'diffRaw',
      'literalRaw',
      'basesRaw',
      'offsetsRaw',
      'lengthsRaw',
      'addsRaw',
      'extrasRaw',
      'seeksRaw',
    ] as const;
    type Section = 'ops' | 'diff' | 'literal' | 'bases' | 'offsets' | 'lengths' | 'adds' | 'extras' | 'seeks';
    const info = (header: DeltaHeader, name: Section) =>
      name === 'ops' || name === 'diff' || name === 'literal' ? header[name] : header.fields![name];
    type Edit =
      | { field: (typeof sizeFields)[number]; lie: number | { plus: number } | { times: number } }
      | { move: Section[]; bytes: number };
    const lie = fc.oneof(
      fc.constantFrom(0, 1, 2 ** 40, 2 ** 53 - 1),
      fc.integer({ min: -64, max: 64 }).map((d) => ({ plus: d })),
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.double({ min: 0, max: 1000, noNaN: true }).map((f) => ({ times: f })),
    );
    const edit: fc.Arbitrary<Edit> = fc.oneof(
      fc.record({ field: fc.constantFrom(...sizeFields), lie }),
      // Moves compressed bytes from one section to another: the file length still adds up.
      fc.record({
        move: fc.constantFrom<Section[]>(
          ['ops', 'diff'],
          ['diff', 'literal'],
          ['ops', 'literal'],
          ['literal', 'ops'],
          ['literal', 'bases'],
          ['offsets', 'lengths'],
          ['adds', 'extras'],
          ['seeks', 'diff'],
        ),
        bytes: fc.integer({ min: -200, max: 200 }),
      }),
    );
    const apply = (header: DeltaHeader, change: Edit) => {
      if ('move' in change) {
        const [from, to] = change.move as [Section, Section];
        info(header, from).compressedSize -= change.bytes;
        info(header, to).compressedSize += change.bytes;
        return;
      }
      const real = {
        targetSize: header.targetSize,
        baseSize: header.bases[0]!.size,
        opCount: header.opCount,
        produced: header.produced,
        opsRaw: header.ops.rawSize,
        diffRaw: header.diff.rawSize,
        literalRaw: header.literal.rawSize,
        basesRaw: header.fields!.bases.rawSize,
        offsetsRaw: header.fields!.offsets.rawSize,
        lengthsRaw: header.fields!.lengths.rawSize,
        addsRaw: header.fields!.adds.rawSize,
        extrasRaw: header.fields!.extras.rawSize,
        seeksRaw: header.fields!.seeks.rawSize,
      }[change.field];
      const l = change.lie;
      const value = Math.max(
        0,
        Math.min(
          Number.MAX_SAFE_INTEGER,
          typeof l === 'number' ? l : 'plus' in l ? real + l.plus : Math.floor(real * l.times),
        ),
      );
      if (change.field === 'targetSize') header.targetSize = value;
      else if (change.field === 'baseSize') header.bases[0]!.size = value;
      else if (change.field === 'opCount') header.opCount = value;
      else if (change.field === 'produced') header.produced = value;
      else if (change.field === 'opsRaw') header.ops.rawSize = value;
      else if (change.field === 'diffRaw') header.diff.rawSize = value;
      else if (change.field === 'literalRaw') header.literal.rawSize = value;
      else info(header, change.field.replace(/Raw$/, '') as Section).rawSize = value;
    };
    const expected = { digest: sha256(target), size: target.length };
    await fc.assert(
      fc.asyncProperty(
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        (edits, withExpected) => {
          const lying = reheader(delta, (header) => {
            for (const e of edits) apply(header, e);
            for (const s of [header.ops, header.diff, header.literal, ...Object.values(header.fields!)])
              s.compressedSize = Math.max(0, s.compressedSize);
          });
          return attempt(lying, withExpected ? expected : undefined);
        },
      ),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('refuses operation streams changed behind a valid checksum (every field of INFLATE and DEFLATE too)', async () => {
    const streams = ['ops', 'bases', 'offsets', 'lengths', 'adds', 'extras', 'seeks'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...streams),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (name, flips) => {
          const changed = rewriteSection(delta, name, (raw) => {
            const copy = Buffer.from(raw);
            for (const [at, value] of flips) if (copy.length > 0) copy[at % copy.length] = value;
            return copy;
          });
          return attempt(changed);
        },
      ),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('refuses flipped bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (flips) => {
          const copy = Buffer.from(delta);
          for (const [at, value] of flips) copy[at % copy.length] = value;
          return attempt(copy);
        },
      ),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('refuses truncations and insertions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (at, inserted, cut) => {
        const i = at % delta.length;
        const bytes = cut
          ? delta.subarray(0, i)
          : Buffer.concat([delta.subarray(0, i), inserted, delta.subarray(i)]);
        return attempt(bytes);
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });

  it('refuses random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), (bytes) => attempt(Buffer.from(bytes))),
      {
        numRuns: fuzzRuns(500),
      },
    );
  });

  it('left only its inputs behind', () => {
    expect(readdirSync(work).sort()).toEqual(['base', 'base.tar', 'good.delta', 'target', 'target.tar']);
  });
});
