import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every TypeScript source file under `dir`, specs left out. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

/**
 * Only the devices feature writes the `devices` table (issue 12): other features call its service or
 * repository, so a device row has one owner that keeps its invariants. Migrations are exempt.
 */
describe('the devices table has one writer', () => {
  it('no server source outside devices/ and migrations inserts, updates or deletes devices rows', () => {
    const root = join(__dirname, '..');
    const writes = /(?:insertInto|updateTable|deleteFrom)\(\s*['"]devices(?: as \w+)?['"]/;
    const offenders = sources(root)
      .map((file) => relative(root, file))
      .filter((file) => !file.startsWith('devices/') && !file.startsWith('database/migrations/'))
      .filter((file) => writes.test(readFileSync(join(root, file), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
