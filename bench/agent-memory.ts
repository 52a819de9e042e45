/**
 * Peak memory of the device agent's decoder: the bundled agent (`devices/agent/dist/ferry-agent.js
 * --selftest-apply`) rebuilds layers of growing size from real deltas made by the encoder, in a
 * child process whose peak RSS (VmHWM) is read from /proc; then pairs of the delta benchmark's
 * real corpus when `bench/corpus/layers` holds them (`CORPUS=debian-rootfs`: a 136 MB Debian
 * rootfs layer), started with the flags the agent ships with (`devices/agent/node-flags.json`).
 * Run: `npm run bench:agent` (`SIZES_MB=16,64,256` for other synthetic sizes, `SIZES_MB=` for
 * none; `CORPUS=debian-rootfs,node-modules,…` for those pairs, `CORPUS=all` for every pair of
 * `bench/deltas`).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeDelta } from '@ferry/delta';
import nodeFlags from '../devices/agent/node-flags.json';
import { noise } from '../test/support/agent-images';

const BUNDLE = join(__dirname, '..', 'devices', 'agent', 'dist', 'ferry-agent.js');
const SIZES_MB = (process.env.SIZES_MB ?? '16,64').split(',').filter(Boolean).map(Number);
const ROOT = join(__dirname, '..');
const ONLY = (process.env.CORPUS ?? 'debian-rootfs').split(',');
const ALL = ONLY.includes('all');
/** Pairs of the delta benchmark's real corpus (`bench/corpus/layers`), when present: [name, bases, target]. */
const CORPUS: [string, string[], string][] = [
  ['debian-rootfs', ['debian-bookworm-minbase.tar'], 'debian-bookworm-upgraded.tar'],
  ['app-layer-multi-base', ['debian-bookworm-minbase.tar', 'node-modules-a.tar'], 'node-modules-b.tar'],
  ['esbuild-x64-close', ['esbuild-linux-x64-0.28.1.tar'], 'esbuild-linux-x64-0.28.2.tar'],
  ['esbuild-arm64-close', ['esbuild-linux-arm64-0.28.1.tar'], 'esbuild-linux-arm64-0.28.2.tar'],
  ['esbuild-x64-far', ['esbuild-linux-x64-0.19.12.tar'], 'esbuild-linux-x64-0.28.2.tar'],
  ['node-modules', ['node-modules-a.tar'], 'node-modules-b.tar'],
  ['three-moved-code', ['three-0.170.0.tar'], 'three-0.171.0.tar'],
  ['next-swc-binary', ['next-swc-linux-x64-14.2.3.tar'], 'next-swc-linux-x64-14.2.4.tar'],
  ['npm-offline-tgz', ['npm-offline-a.tar'], 'npm-offline-b.tar'],
];

/** A layer of `mb` MiB: 2 MiB files, half noise, half text; v2 edits every file a little and renames some. */
function layer(dir: string, mb: number, version: 1 | 2): string {
  const root = join(dir, `root-v${version}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'app'), { recursive: true });
  for (let i = 0; i < mb / 2; i++) {
    const body =
      i % 2 === 0
        ? noise(i + 1, 2 << 20)
        : Buffer.from(`line ${i} of a text file that compresses\n`.repeat((2 << 20) / 40));
    if (version === 2)
      for (let e = 0; e < 8; e++) body.write(`v2 edit ${e}`, (e * 262_139 + i) % (body.length - 16));
    const name = version === 2 && i % 5 === 0 ? `lib-${i}-1.1.so` : `lib-${i}-1.0.so`;
    writeFileSync(join(root, 'app', name), body);
  }
  const tar = join(dir, `layer-v${version}.tar`);
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-C',
    root,
    '-cf',
    tar,
    '.',
  ]);
  rmSync(root, { recursive: true, force: true });
  return tar;
}

async function peakOf(
  args: string[],
): Promise<{ vmHwm: number; self: { peakRssBytes: number; ms: number; digest: string } }> {
  const child = spawn(process.execPath, [...nodeFlags, BUNDLE, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  let vmHwm = 0;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) vmHwm = Math.max(vmHwm, Number(m[1]) * 1024);
    } catch {
      // exited
    }
  }, 5);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearInterval(poll);
  if (code !== 0) throw new Error(`selftest exited ${code}`);
  return { vmHwm, self: JSON.parse(out) as { peakRssBytes: number; ms: number; digest: string } };
}

async function main(): Promise<void> {
  const work = join(tmpdir(), 'ferry-bench-agent');
  mkdirSync(work, { recursive: true });
  const rows: string[] = [];
  for (const mb of SIZES_MB) {
    const base = layer(work, mb, 1);
    const target = layer(work, mb, 2);
    const delta = join(work, 'delta');
    const encodeStart = Date.now();
    await encodeDelta({ bases: [base], target, out: delta });
    const encodeMs = Date.now() - encodeStart;
    const out = join(work, 'rebuilt.tar');
    const { vmHwm, self } = await peakOf(['--selftest-apply', delta, out, base]);
    const expected = createHash('sha256').update(readFileSync(target)).digest('hex');
    if (self.digest !== `sha256:${expected}`) throw new Error('rebuilt layer differs');
    const row = `| ${(statSync(target).size / 2 ** 20).toFixed(0)} MiB | ${(statSync(delta).size / 1024).toFixed(0)} KiB | ${(vmHwm / 2 ** 20).toFixed(1)} MiB | ${(self.peakRssBytes / 2 ** 20).toFixed(1)} MiB | ${(self.ms / 1000).toFixed(1)} s | ${(encodeMs / 1000).toFixed(1)} s |`;
    console.log(row);
    rows.push(row);
    for (const f of [base, target, delta, out]) rmSync(f, { force: true });
  }
  for (const [name, bases, target] of CORPUS) {
    const layers = join(ROOT, 'bench', 'corpus', 'layers');
    if (!(ALL || ONLY.includes(name)) || ![...bases, target].every((f) => existsSync(join(layers, f))))
      continue;
    // Private copies (the delta benchmark may rewrite its files meanwhile), encoded by the current encoder.
    const baseCopies = bases.map((b) => {
      const copy = join(work, b);
      copyFileSync(join(layers, b), copy);
      return copy;
    });
    const targetCopy = join(work, `target-${target}`);
    copyFileSync(join(layers, target), targetCopy);
    const delta = join(work, `${name}.delta`);
    const encodeStart = Date.now();
    await encodeDelta({ bases: baseCopies, target: targetCopy, out: delta });
    const encodeMs = Date.now() - encodeStart;
    const out = join(work, 'rebuilt.tar');
    const { vmHwm, self } = await peakOf(['--selftest-apply', delta, out, ...baseCopies]);
    const expected = createHash('sha256')
      .update(readFileSync(join(layers, target)))
      .digest('hex');
    if (self.digest !== `sha256:${expected}`) throw new Error(`${name}: rebuilt layer differs`);
    const row = `| ${name}: ${(statSync(out).size / 2 ** 20).toFixed(0)} MiB | ${(statSync(delta).size / 1024).toFixed(0)} KiB | ${(vmHwm / 2 ** 20).toFixed(1)} MiB | ${(self.peakRssBytes / 2 ** 20).toFixed(1)} MiB | ${(self.ms / 1000).toFixed(1)} s | ${(encodeMs / 1000).toFixed(1)} s |`;
    console.log(row);
    rows.push(row);
    for (const f of [delta, out, targetCopy, ...baseCopies]) rmSync(f, { force: true });
  }
  console.log(
    '\n| layer | delta | peak RSS (VmHWM) | peak RSS (sampled in process) | apply time | encode time |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
  rmSync(work, { recursive: true, force: true });
}

void main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
