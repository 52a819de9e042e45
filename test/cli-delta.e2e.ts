import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { craftDelta, OpsBuilder } from '../libs/delta/src/delta/testing/craft';
import {
  noise,
  prose,
  removeDir,
  scratchDir,
  sha256Hex,
  writeTar,
} from '../libs/delta/src/delta/testing/fixtures';
import { buildCli, ferry as run } from './support/cli';

/**
 * `ferry delta diff|info|apply` as a user runs it: the built CLI binary as a subprocess on real
 * layer tars (moved here from apps/cli: compiling and spawning the binary is an end-to-end test).
 */
const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const ferry = (...args: string[]) => run(args);

let dir: string;
let base: string;
let target: string;

beforeAll(() => buildCli(), 120_000);

beforeEach(async () => {
  dir = await scratchDir('ferry-cli-');
  base = join(dir, 'old.tar');
  target = join(dir, 'new.tar');
  const text = prose(300_000, 3);
  await writeTar(base, [
    { name: 'app/main.js', data: text },
    { name: 'app/blob.bin', data: noise(200_000, 4) },
  ]);
  await writeTar(target, [
    { name: 'app/main.js', data: Buffer.concat([text, Buffer.from('\nconsole.log("v2");\n')]) },
    { name: 'app/renamed.bin', data: noise(200_000, 4) },
  ]);
});
afterEach(async () => {
  await removeDir(dir);
});

describe('ferry delta (built CLI as a subprocess)', () => {
  it('diffs, shows info and applies to a byte-identical layer', async () => {
    const delta = join(dir, 'd.delta');
    const diff = await ferry('delta', 'diff', '--base', base, '--target', target, '--out', delta);
    expect(diff).toMatchObject({ code: 0, stderr: '' });
    expect(diff.stdout).toMatch(/^wrote .*d\.delta: \d+ bytes/);

    const info = await ferry('delta', 'info', delta, '--json');
    expect(info.code).toBe(0);
    const parsed = JSON.parse(info.stdout);
    expect(parsed.header.targetDigest).toBe(await sha256Hex(target));
    expect(parsed.header.bases[0].digest).toBe(await sha256Hex(base));
    expect(parsed.stats.copy.count).toBeGreaterThan(0);
    const text = await ferry('delta', 'info', delta);
    expect(text.stdout).toContain('operations:');
    expect(text.stdout).toMatch(/copy\s+\d+ ops/);

    const out = join(dir, 'rebuilt.tar');
    const apply = await ferry('delta', 'apply', '--base', base, '--delta', delta, '--out', out);
    expect(apply.code).toBe(0);
    expect(await sha256Hex(out)).toBe(await sha256Hex(target));
  });

  it('exits 2 on a corrupt delta or a wrong base and leaves no output', async () => {
    const delta = join(dir, 'd.delta');
    expect((await ferry('delta', 'diff', '--base', base, '--target', target, '--out', delta)).code).toBe(0);
    const bytes = await readFile(delta);
    bytes[bytes.length - 60] = bytes[bytes.length - 60]! ^ 0xff;
    await writeFile(join(dir, 'bad.delta'), bytes);
    const out = join(dir, 'out.tar');
    const applyCrafted = (name: string, ...options: string[]) =>
      ferry(
        'delta',
        'apply',
        '--base',
        base,
        '--delta',
        join(dir, `${name}.delta`),
        '--out',
        out,
        ...options,
      );
    const corrupt = await applyCrafted('bad');
    expect(corrupt.code).toBe(2);
    expect(corrupt.stderr).toContain('DeltaCorruptError');
    const wrongBase = await ferry('delta', 'apply', '--base', target, '--delta', delta, '--out', out);
    expect(wrongBase.code).toBe(2);
    expect(wrongBase.stderr).toContain('DeltaBaseMismatchError');
    expect((await readdir(dir)).sort()).toEqual(['bad.delta', 'd.delta', 'new.tar', 'old.tar']);
  });

  it('exits 2 on tiny crafted deltas declaring a huge target, before writing a byte', async () => {
    const baseBytes = await readFile(base);
    const tib = 2 ** 40;
    const crafted = (size: number) =>
      craftDelta(
        {
          targetDigest: 'ab'.repeat(32),
          targetSize: size,
          bases: [{ digest: sha256Of(baseBytes), size: baseBytes.length }],
          opCount: 1,
        },
        { ops: new OpsBuilder().zero(size).build() },
      );
    await writeFile(join(dir, 'tib.delta'), crafted(tib));
    await writeFile(join(dir, 'pib.delta'), crafted(2 ** 52));
    const out = join(dir, 'out.tar');
    const applyCrafted = (name: string, ...options: string[]) =>
      ferry(
        'delta',
        'apply',
        '--base',
        base,
        '--delta',
        join(dir, `${name}.delta`),
        '--out',
        out,
        ...options,
      );
    const expectSize = await applyCrafted('tib', '--expect-size', '10240');
    expect(expectSize.code).toBe(2);
    expect(expectSize.stderr).toContain(
      `DeltaTargetMismatchError: delta rebuilds sha256:${'ab'.repeat(32)} (${tib} bytes)`,
    );
    const expectDigest = await applyCrafted('tib', '--expect-digest', `sha256:${await sha256Hex(target)}`);
    expect(expectDigest.code).toBe(2);
    expect(expectDigest.stderr).toContain('DeltaTargetMismatchError');
    const noSpace = await applyCrafted('pib');
    expect(noSpace.code).toBe(2);
    expect(noSpace.stderr).toContain('DeltaNoSpaceError');
    const badOption = await applyCrafted('tib', '--expect-size', 'lots');
    expect(badOption.code).toBe(1);
    expect(badOption.stderr).toContain('expected a size in bytes');
    expect((await readdir(dir)).sort()).toEqual(['new.tar', 'old.tar', 'pib.delta', 'tib.delta']);
  });

  it('exits 1 on usage and input errors with a clear message', async () => {
    const missing = await ferry(
      'delta',
      'diff',
      '--base',
      join(dir, 'nope.tar'),
      '--target',
      target,
      '--out',
      join(dir, 'x'),
    );
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/DeltaInputError: cannot read .*nope\.tar/);
    const usage = await ferry('delta', 'apply', '--base', base);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain("required option '--delta <file>' not specified");
    for (const bad of ['-1', '1.5', 'ten', '1e9', '9999999']) {
      const limit = await ferry(
        'delta',
        'diff',
        '--base',
        base,
        '--target',
        target,
        '--out',
        join(dir, 'x'),
        '--literal-strong-mb',
        bad,
      );
      expect([bad, limit.code, limit.stderr]).toEqual([
        bad,
        1,
        expect.stringContaining('expected a whole number of MiB'),
      ]);
    }
  });

  it('compresses new bytes over --literal-strong-mb at quality 9: a larger literal section, the same layer', async () => {
    const grown = join(dir, 'grown.tar');
    await writeTar(grown, [
      { name: 'app/main.js', data: prose(300_000, 3) },
      { name: 'app/new.txt', data: prose(1_500_000, 9) },
    ]);
    const literal = async (name: string, ...limit: string[]) => {
      const delta = join(dir, name);
      const diff = await ferry(
        'delta',
        'diff',
        '--base',
        base,
        '--target',
        grown,
        '--out',
        delta,
        '--json',
        ...limit,
      );
      expect(diff.code).toBe(0);
      const out = join(dir, `${name}.tar`);
      expect((await ferry('delta', 'apply', '--base', base, '--delta', delta, '--out', out)).code).toBe(0);
      expect(await sha256Hex(out)).toBe(await sha256Hex(grown));
      return JSON.parse(diff.stdout).header.literal as { rawSize: number; compressedSize: number };
    };
    const strong = await literal('strong.delta');
    const fast = await literal('fast.delta', '--literal-strong-mb', '1');
    expect(fast.rawSize).toBe(strong.rawSize);
    expect(strong.rawSize).toBeGreaterThan(2 ** 20);
    expect(fast.compressedSize).toBeGreaterThan(strong.compressedSize);
  });
});
