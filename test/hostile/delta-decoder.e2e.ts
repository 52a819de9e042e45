import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { DeltaError, applyDelta, encodeDelta } from '@ferry/delta';
import { fuzzRuns } from '../support/fuzz';
import { gnuTarLayer } from '../support/hostile-archives';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Property: a delta with flipped, cut or inserted bytes either rebuilds exactly the target (a flip
 * that changed nothing) or is refused with a DeltaError — and then leaves no output file behind.
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
    const base = gnuTarLayer(join(work, 'base'), {
      'bin/tool': binary.toString('latin1'),
      'etc/conf': 'x=1\n',
    });
    target = gnuTarLayer(join(work, 'target'), {
      'bin/tool': changed.toString('latin1'),
      'etc/conf': 'x=2\n',
      'etc/new': 'hello\n'.repeat(100),
    });
    writeFileSync(join(work, 'base.tar'), base);
    writeFileSync(join(work, 'target.tar'), target);
    bases = [join(work, 'base.tar')];
    await encodeDelta({ bases, target: join(work, 'target.tar'), out: join(work, 'good.delta') });
    delta = readFileSync(join(work, 'good.delta'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const attempt = async (bytes: Buffer): Promise<boolean> => {
    const path = join(work, `d${++n}`);
    const out = join(work, `out${n}.tar`);
    writeFileSync(path, bytes);
    try {
      await applyDelta({ bases, delta: path, out });
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
    await attempt(delta);
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
