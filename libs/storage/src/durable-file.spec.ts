import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256File, writeFileDurable } from './durable-file';

/** The one durable-write helper of server, CLI, worker and agent, on a real file system. */
describe('writeFileDurable', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ferry-durable-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces a file with exactly the new content and mode, whatever the umask, and leaves no temporary file', async () => {
    const path = join(dir, 'login.json');
    writeFileSync(path, 'old', { mode: 0o644 });
    const umask = process.umask(0o077);
    try {
      await writeFileDurable(path, 'new', 0o640);
    } finally {
      process.umask(umask);
    }
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['login.json']);
  });

  it('fsyncs the new file and then its folder', async () => {
    const probe = await open(dir, 'r');
    const handles = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
    await probe.close();
    const sync = jest.spyOn(handles, 'sync');
    try {
      await writeFileDurable(join(dir, 'f'), 'x');
      expect(sync).toHaveBeenCalledTimes(2);
    } finally {
      sync.mockRestore();
    }
  });

  it('leaves the old file and no temporary file when the rename fails', async () => {
    const path = join(dir, 'target');
    mkdirSync(join(path, 'busy'), { recursive: true }); // a non-empty folder cannot be renamed over
    await expect(writeFileDurable(path, 'x')).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['target']);
  });

  it('hashes a file as sha256:<hex>', async () => {
    writeFileSync(join(dir, 'f'), 'abc');
    expect(await sha256File(join(dir, 'f'))).toBe(
      `sha256:${createHash('sha256').update('abc').digest('hex')}`,
    );
  });
});
