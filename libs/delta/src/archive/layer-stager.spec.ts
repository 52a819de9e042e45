import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnusableArchiveError } from '@ferry/protocol';
import { scanLayerTar } from './layer-stager';

/** Which layer tars pass: those Docker's reader (Go's archive/tar) loads, nothing it refuses. */
describe('scanLayerTar', () => {
  let work: string;
  let tar: Buffer;
  let dataEnd: number;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ferry-scan-'));
    mkdirSync(join(work, 'root', 'app'), { recursive: true });
    writeFileSync(join(work, 'root', 'app', 'a.txt'), 'a'.repeat(100));
    writeFileSync(join(work, 'root', 'app', 'b.txt'), 'b'.repeat(700));
    execFileSync('tar', ['-C', join(work, 'root'), '--sort=name', '-cf', join(work, 'l.tar'), 'app']);
    tar = readFileSync(join(work, 'l.tar'));
    // The last member's header is the last non-zero 512-byte block before its 700 data bytes.
    dataEnd = tar.indexOf(Buffer.from('b'.repeat(700))) + 700;
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const scan = (bytes: Buffer): Promise<void> => {
    const path = join(work, `t-${bytes.length}.tar`);
    writeFileSync(path, bytes);
    return scanLayerTar(path, 'layer 1');
  };

  it('accepts a tar as GNU tar writes it', async () => {
    await expect(scan(tar)).resolves.toBeUndefined();
  });

  it('accepts a tar without end-of-archive blocks, and one that ends right after its last data (umoci insert)', async () => {
    await expect(scan(tar.subarray(0, Math.ceil(dataEnd / 512) * 512))).resolves.toBeUndefined();
    await expect(scan(tar.subarray(0, dataEnd))).resolves.toBeUndefined();
    await expect(scan(tar.subarray(0, dataEnd + 3))).resolves.toBeUndefined();
  });

  it('refuses a tar cut inside a member data or inside a header, as Docker does', async () => {
    await expect(scan(tar.subarray(0, dataEnd - 1))).rejects.toThrow(UnusableArchiveError);
    await expect(scan(tar.subarray(0, dataEnd - 1))).rejects.toThrow(/not a valid tar/);
    await expect(
      scan(Buffer.concat([tar.subarray(0, Math.ceil(dataEnd / 512) * 512), tar.subarray(0, 100)])),
    ).rejects.toThrow(/not a valid tar/);
  });
});
