// Builds the dashboard into apps/dashboard/dist: one bundled script (esbuild), the page and its styles.
// No CDN and no framework: the server serves these files at /dashboard and they work offline.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: ['es2020'],
  logLevel: 'warning',
});
for (const file of ['index.html', 'styles.css']) copyFileSync(join(root, 'src', file), join(dist, file));
