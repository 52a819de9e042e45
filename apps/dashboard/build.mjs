// Builds the dashboard into apps/dashboard/dist: one bundled script (esbuild), the page and its styles.
// No CDN and no framework: the server serves these files at /dashboard and they work offline.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const result = await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: ['es2020'],
  // Values come only from the protocol's zod-free entry point, bundled from source; `@ferry/protocol`
  // itself is imported for types alone, which vanish. The wire entry also holds the manifest signature
  // check (node:crypto), which the browser never calls: tree-shaking drops it, and marking node:crypto
  // external keeps esbuild from resolving it for the browser first.
  alias: { '@ferry/protocol/wire': join(root, '..', '..', 'libs', 'protocol', 'src', 'wire.ts') },
  external: ['node:crypto'],
  metafile: true,
  logLevel: 'warning',
});
const heavy = Object.keys(result.metafile.inputs).filter((input) => /node_modules\/zod\//.test(input));
if (heavy.length > 0) throw new Error(`the dashboard must not bundle zod: ${heavy.join(', ')}`);
// A Node module left in the bundle (libs/protocol lost `"sideEffects": false`) would throw in the browser.
if (/["']node:/.test(readFileSync(join(dist, 'app.js'), 'utf8')))
  throw new Error('the dashboard bundle imports a Node module');
for (const file of ['index.html', 'styles.css', 'favicon.svg'])
  copyFileSync(join(root, 'src', file), join(dist, file));
