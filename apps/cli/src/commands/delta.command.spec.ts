import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import {
  noise,
  prose,
  removeDir,
  scratchDir,
  sha256File,
  writeTar,
} from '../../../../libs/delta/src/delta/testing/fixtures';

const exec = promisify(execFile);
const root = resolve(__dirname, '../../../..');
const bin = join(root, 'apps/cli/bin/ferry.js');

/** Runs the built `ferry` binary; never throws, returns the exit code and both outputs. */
async function ferry(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let dir: string;
let base: string;
let target: string;

beforeAll(async () => {
  await exec('npx', ['tsc', '-b', 'apps/cli/tsconfig.json'], { cwd: root });
}, 120_000);

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
    expect(parsed.header.targetDigest).toBe(await sha256File(target));
    expect(parsed.header.bases[0].digest).toBe(await sha256File(base));
    expect(parsed.stats.copy.count).toBeGreaterThan(0);
    const text = await ferry('delta', 'info', delta);
    expect(text.stdout).toContain('operations:');
    expect(text.stdout).toMatch(/copy\s+\d+ ops/);

    const out = join(dir, 'rebuilt.tar');
    const apply = await ferry('delta', 'apply', '--base', base, '--delta', delta, '--out', out);
    expect(apply.code).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(target));
  });

  it('exits 2 on a corrupt delta or a wrong base and leaves no output', async () => {
    const delta = join(dir, 'd.delta');
    expect((await ferry('delta', 'diff', '--base', base, '--target', target, '--out', delta)).code).toBe(0);
    const bytes = await readFile(delta);
    bytes[bytes.length - 60] = bytes[bytes.length - 60]! ^ 0xff;
    await writeFile(join(dir, 'bad.delta'), bytes);
    const out = join(dir, 'out.tar');
    const corrupt = await ferry(
      'delta',
      'apply',
      '--base',
      base,
      '--delta',
      join(dir, 'bad.delta'),
      '--out',
      out,
    );
    expect(corrupt.code).toBe(2);
    expect(corrupt.stderr).toContain('DeltaCorruptError');
    const wrongBase = await ferry('delta', 'apply', '--base', target, '--delta', delta, '--out', out);
    expect(wrongBase.code).toBe(2);
    expect(wrongBase.stderr).toContain('DeltaBaseMismatchError');
    expect((await readdir(dir)).sort()).toEqual(['bad.delta', 'd.delta', 'new.tar', 'old.tar']);
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
  });
});
