// Bundles the agent into one JavaScript file with no native addon: devices/agent/dist/ferry-agent.js.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: join(here, 'dist', 'ferry-agent.js'),
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  // V8's young generation grows to tens of MB under stream traffic; 1 MB semi-spaces keep the
  // agent's peak RSS under 80 MB (BENCHMARKS.md, "Agent"). The unit file and Dockerfile pass it too.
  banner: { js: '#!/usr/bin/env -S node --max-semi-space-size=1' },
  plugins: [
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
