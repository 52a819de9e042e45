import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FerryConfig } from '../config/config';
import { AdminTokenService } from './admin-token.service';

/** The generated admin token is written with the shared durable-file helper (issue 12 item 4). */
describe('AdminTokenService', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ferry-token-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lets the server generate its admin token even when a crash left admin-token.tmp in the way', async () => {
    // The server's old copy wrote to a fixed `admin-token.tmp`: a leftover of that name stopped it.
    mkdirSync(join(dir, 'admin-token.tmp'));
    const write = process.stdout.write;
    process.stdout.write = () => true;
    try {
      await new AdminTokenService({
        dataDir: dir,
        adminToken: null,
        http: { publicUrl: 'http://127.0.0.1:8080' },
      } as FerryConfig).onModuleInit();
    } finally {
      process.stdout.write = write;
    }
    expect(readFileSync(join(dir, 'admin-token'), 'utf8')).toMatch(/^\S{16,}\n$/);
    expect(statSync(join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
  });
});
