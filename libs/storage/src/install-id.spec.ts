import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InstallIdError, ensureInstallId, readInstallId } from './install-id';

describe('install id', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ferry-install-id-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created once even when a server and workers race to create it, and kept afterwards', async () => {
    const data = join(dir, 'data');
    const results = await Promise.all(Array.from({ length: 8 }, () => ensureInstallId(data)));
    const id = results[0]!.id;
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(results.every((r) => r.id === id)).toBe(true);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(readdirSync(data)).toEqual(['install-id']);
    expect(readFileSync(join(data, 'install-id'), 'utf8')).toBe(`${id}\n`);
    expect(await ensureInstallId(data)).toEqual({ id, created: false });
  });

  it('refuses a file that does not hold an id, naming it, rather than starting as another install', async () => {
    expect(await readInstallId(dir)).toBeNull();
    writeFileSync(join(dir, 'install-id'), 'garbage');
    await expect(ensureInstallId(dir)).rejects.toThrow(InstallIdError);
    await expect(ensureInstallId(dir)).rejects.toThrow(
      `${join(dir, 'install-id')} does not hold a Ferry install id`,
    );
  });
});
