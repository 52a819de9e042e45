// Whether the build is current: every output exists and no source (TypeScript, dashboard files,
// tsconfig, the lockfile; not tests) changed since the last `npm run build` finished, which writes
// the stamp (`node scripts/build-current.mjs --stamp`). Output mtimes cannot tell: tsc -b rewrites
// only the files it has to. Lets `npm start` skip the seconds a rebuild costs when nothing changed.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What `npm run build` makes: the build is current only when every one exists. */
export const BUILD_OUTPUTS = [
  'libs/protocol/dist/index.js',
  'libs/delta/dist/index.js',
  'libs/storage/dist/index.js',
  'libs/logging/dist/index.js',
  'apps/server/dist/main.js',
  'apps/worker/dist/main.js',
  'apps/cli/dist/main.js',
  'apps/dashboard/dist/app.js',
  'devices/agent/dist/ferry-agent.js',
  'devices/simulator/dist/cli.js',
];
const sourceFolders = ['libs', 'apps', 'devices'];
const sourceFiles = ['package-lock.json', 'tsconfig.base.json', 'tsconfig.build.json'];

function newestIn(folder) {
  let newest = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || /\.(spec|e2e)\.ts$/.test(entry.name))
      continue;
    const path = join(folder, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const stampFile = (root) => join(root, 'node_modules', '.ferry-build-stamp');

/** @param {string} root the repository folder */
export function buildIsCurrent(root) {
  if (![...BUILD_OUTPUTS, 'node_modules/.ferry-build-stamp'].every((file) => existsSync(join(root, file))))
    return false;
  const newestSource = Math.max(
    ...sourceFolders.map((folder) => newestIn(join(root, folder))),
    ...sourceFiles.map((file) => statSync(join(root, file)).mtimeMs),
  );
  return newestSource <= statSync(stampFile(root)).mtimeMs;
}

if (process.argv[2] === '--stamp') {
  writeFileSync(
    stampFile(join(dirname(fileURLToPath(import.meta.url)), '..')),
    `${new Date().toISOString()}\n`,
  );
}
