import { createReadStream, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyDelta } from '@ferry/delta';
import { DeltaJobData, deltaKey } from '@ferry/protocol';
import { FileBlobStore, sha256File } from '@ferry/storage';
import {
  noise,
  prose,
  removeDir,
  scratchDir,
  writeTar,
} from '../../../../libs/delta/src/delta/testing/fixtures';
import { CorruptDeltaInputError, buildDelta } from './delta-builder';

/**
 * The worker's builder on a real blob store holding real layer tars: what a delta job does between
 * the queue and the store, without BullMQ (the e2e suites run it under the queue).
 */
describe('delta builder', () => {
  let dir: string;
  let store: FileBlobStore;
  let base: string;
  let target: string;

  /** Writes a tar layer and stores it as a blob; its digest. */
  async function layer(name: string, members: Parameters<typeof writeTar>[1]): Promise<string> {
    const file = join(dir, name);
    await writeTar(file, members);
    return (await store.put(createReadStream(file))).digest;
  }

  const job = (bases: string[], targetDigest: string, targetGzipSize: number): DeltaJobData => ({
    key: deltaKey(bases, targetDigest),
    bases,
    target: targetDigest,
    targetGzipSize,
  });
  const blobs = () =>
    readdirSync(join(dir, 'data', 'blobs', 'sha256')).flatMap((d) =>
      readdirSync(join(dir, 'data', 'blobs', 'sha256', d)),
    );
  const temporaries = () => readdirSync(join(dir, 'data', 'tmp'));

  beforeAll(async () => {
    dir = await scratchDir('ferry-builder-');
    store = new FileBlobStore(join(dir, 'data'));
    const text = prose(400_000, 7);
    base = await layer('v1.tar', [
      { name: 'app/main.js', data: text },
      { name: 'app/blob.bin', data: noise(300_000, 8) },
    ]);
    target = await layer('v2.tar', [
      { name: 'app/main.js', data: Buffer.concat([text, Buffer.from('\nconsole.log("v2");\n')]) },
      { name: 'app/blob.bin', data: noise(300_000, 8) },
      { name: 'app/new.txt', data: 'new in v2\n' },
    ]);
  });
  afterAll(() => removeDir(dir));

  it('stores a delta that rebuilds the target byte for byte, and reports its digest and size', async () => {
    const before = blobs().length;
    const result = await buildDelta(store, job([base], target, 10_000_000));
    if (result.kind !== 'delta') throw new Error(`expected a delta, got ${result.kind}`);
    expect(result.size).toBe(await store.size(result.digest));
    expect(result.size).toBeLessThan(20_000);
    expect(await sha256File(store.pathOf(result.digest))).toBe(result.digest);
    expect(blobs().length).toBe(before + 1);
    const out = join(dir, 'rebuilt.tar');
    await applyDelta({ bases: [store.pathOf(base)], delta: store.pathOf(result.digest), out });
    expect(await sha256File(out)).toBe(target);
    expect(temporaries()).toEqual([]);
  });

  it('reports "full" and stores nothing when the delta is not smaller than the gzip\'d layer', async () => {
    const before = blobs().length;
    const result = await buildDelta(store, job([base], target, 100));
    expect(result).toMatchObject({ kind: 'full' });
    expect(result.kind === 'full' && result.deltaSize).toBeGreaterThanOrEqual(100);
    expect(blobs().length).toBe(before);
    expect(temporaries()).toEqual([]);
  });

  it('refuses, as unrecoverable, a base that is not in the store', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    const build = buildDelta(store, job([missing], target, 10_000_000));
    await expect(build).rejects.toThrow(CorruptDeltaInputError);
    await expect(buildDelta(store, job([missing], target, 10_000_000))).rejects.toThrow(
      `base layer 1 of 1 ${missing} is not in the blob store`,
    );
  });

  it('refuses, as unrecoverable, a stored layer whose bytes no longer match its digest', async () => {
    const victim = await layer('victim.tar', [{ name: 'x', data: noise(50_000, 9) }]);
    writeFileSync(store.pathOf(victim), Buffer.from('bit rot'));
    await expect(buildDelta(store, job([victim], target, 10_000_000))).rejects.toThrow(
      new RegExp(`stored layer ${victim} is corrupt`),
    );
    await expect(buildDelta(store, job([base], victim, 10_000_000))).rejects.toThrow(CorruptDeltaInputError);
    expect(temporaries()).toEqual([]);
  });
});
