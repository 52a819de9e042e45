// Bundles the agent into one JavaScript file with no native addon: devices/agent/dist/ferry-agent.js.
// `node build.mjs [entry.ts outfile.js]` bundles another entry the same way (test/agent-bundle.e2e.ts
// uses it to prove the weight check below can fail).
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const NODE_FLAGS = JSON.parse(readFileSync(join(here, 'node-flags.json'), 'utf8'));
const [entry = join(here, 'src', 'main.ts'), outfile = join(here, 'dist', 'ferry-agent.js')] =
  process.argv.slice(2);

// The light entry points the agent may import (package.json `exports` of each library, and the same
// paths as tsconfig.json and jest.config.js): bundled from source so unused code shakes out.
const entryPoints = {
  '@ferry/protocol/wire': join(root, 'libs', 'protocol', 'src', 'wire.ts'),
  '@ferry/delta/decoder': join(root, 'libs', 'delta', 'src', 'decoder.ts'),
  '@ferry/storage/files': join(root, 'libs', 'storage', 'src', 'files.ts'),
};
// What must never reach a device: zod (about 12 MB of RSS), server-side native modules, the framework.
const FORBIDDEN = /(^|\/)node_modules\/(zod|bsdiff-node|better-sqlite3|@nestjs|bullmq|ioredis)\/|\.node$/;

const result = await build({
  entryPoints: [entry],
  outfile,
  write: false,
  metafile: true,
  // An entry outside the repository (the bundle test's) still resolves the repository's packages.
  nodePaths: [join(root, 'node_modules')],
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  // How Node runs the agent (node-flags.json; docs/agent.md "Running it"): the unit file and the
  // Dockerfile pass the same flags (test/agent-bundle.e2e.ts checks).
  banner: { js: `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}` },
  plugins: [
    {
      name: 'ferry-light-entry-points',
      setup(b) {
        b.onResolve({ filter: /^@ferry\// }, (args) => {
          const path = entryPoints[args.path];
          if (path) return { path };
          return {
            errors: [
              { text: `${args.path} is not a light entry point (${Object.keys(entryPoints).join(', ')})` },
            ],
          };
        });
      },
    },
    {
      // ws (under mqtt.js) tries the native speedups bufferutil and utf-8-validate and falls back
      // to JavaScript when they fail to load: bundle a stub that always fails, never a .node file.
      name: 'no-native-addons',
      setup(b) {
        b.onResolve({ filter: /^(bufferutil|utf-8-validate)$/ }, (args) => ({
          path: args.path,
          namespace: 'stub',
        }));
        b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
          contents: "throw new Error('native addons are not bundled into ferry-agent');",
        }));
      },
    },
  ],
  logLevel: 'warning',
});

const heavy = Object.keys(result.metafile.inputs).filter((input) => FORBIDDEN.test(input));
if (heavy.length > 0) {
  console.error(
    `ferry-agent must not bundle these (import a light entry point instead):\n  ${heavy.join('\n  ')}`,
  );
  process.exit(1);
}
mkdirSync(dirname(outfile), { recursive: true });
for (const file of result.outputFiles) writeFileSync(file.path, file.contents);
