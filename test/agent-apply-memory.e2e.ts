import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeDelta } from '@ferry/delta';
import nodeFlags from '../devices/agent/node-flags.json';
import { prose, removeDir, scratchDir, sha256Hex } from '../libs/delta/src/delta/testing/fixtures';
import { buildAgentBundle } from './support/agent-process';
import { gnuTarLayer } from './support/hostile-archives';

/**
 * The bundled agent, started as it ships, rebuilding a layer of 300 changed gzip files (a
 * Debian rootfs has hundreds: changelogs, man pages): each is unpacked from the base and
 * deflated again. The decoder keeps one deflate state, one output buffer and one read window
 * for all of them; with a set per file the garbage reached 12.8 MiB of array buffers on this
 * layer (and 37 MiB, 4 MiB more resident memory, on the Debian rootfs of bench/agent-memory.ts).
 */
let dir: string;
let bundle: string;

beforeAll(async () => {
  bundle = buildAgentBundle();
  dir = await scratchDir('ferry-agent-memory-');
}, 120_000);
afterAll(async () => {
  await removeDir(dir);
});

/** A layer of `count` gzip'd text files (gzip -9 as zlib makes it); `edited` adds a line to each. */
function gzipLayer(name: string, count: number, edited: boolean): string {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) {
    const text = prose(6_000 + ((i * 7_919) % 6_000), i + 1);
    const body = edited
      ? Buffer.concat([
          text.subarray(0, text.length / 2),
          Buffer.from(`\nchanged in ${i}\n`),
          text.subarray(text.length / 2),
        ])
      : text;
    files[`usr/share/doc/package-${i}/changelog.gz`] = gzipSync(body, { level: 9 });
  }
  gnuTarLayer(join(dir, name), files);
  return join(dir, name, 'layer.tar');
}

it('rebuilds a layer of 300 recompressed gzip files with no garbage per file', async () => {
  const base = gzipLayer('v1', 300, false);
  const target = gzipLayer('v2', 300, true);
  const delta = join(dir, 'v2.delta');
  const encoded = await encodeDelta({ bases: [base], target, out: delta });
  expect(encoded.choices.recompressed).toBe(300);
  expect(encoded.stats.inflate.count).toBe(300);

  const out = join(dir, 'rebuilt.tar');
  const result = JSON.parse(
    execFileSync(process.execPath, [...nodeFlags, bundle, '--selftest-apply', delta, out, base], {
      timeout: 120_000,
    }).toString(),
  ) as { digest: string; peakRssBytes: number; peakArrayBuffersBytes: number };
  process.stdout.write(`agent rebuilding 300 gzip files: ${JSON.stringify(result)}\n`);
  expect(result.digest).toBe(`sha256:${await sha256Hex(target)}`);
  expect(await sha256Hex(out)).toBe(await sha256Hex(target));
  // 3.9 MiB measured (its sections' windows, the base window and the output chunk).
  expect(result.peakArrayBuffersBytes).toBeLessThan(8 * 2 ** 20);
  expect(result.peakRssBytes).toBeLessThan(64 * 2 ** 20);
}, 180_000);
