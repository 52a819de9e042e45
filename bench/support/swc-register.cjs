/**
 * Lets `node -r ./bench/support/swc-register.cjs bench/x.ts` run TypeScript from this repository
 * without a build step: .ts files are compiled by swc (with decorator metadata, which NestJS needs
 * and esbuild does not emit) and `@ferry/*` imports resolve to libs/<name>/src, as in jest.config.js.
 */
const Module = require('node:module');
const path = require('node:path');
const { transformSync } = require('@swc/core');

const root = path.resolve(__dirname, '..', '..');
const aliases = {
  '@ferry/protocol': path.join(root, 'libs/protocol/src/index.ts'),
  '@ferry/delta': path.join(root, 'libs/delta/src/index.ts'),
  '@ferry/protocol/wire': path.join(root, 'libs/protocol/src/wire.ts'),
  '@ferry/delta/decoder': path.join(root, 'libs/delta/src/decoder.ts'),
  '@ferry/storage/files': path.join(root, 'libs/storage/src/files.ts'),
};

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (aliases[request]) return aliases[request];
  try {
    return resolve.call(this, request, parent, ...rest);
  } catch (error) {
    // Relative imports without an extension that name a .ts file or folder.
    if (request.startsWith('.') && parent?.filename) {
      const base = path.resolve(path.dirname(parent.filename), request);
      for (const candidate of [`${base}.ts`, path.join(base, 'index.ts')]) {
        try {
          return resolve.call(this, candidate, parent, ...rest);
        } catch {
          // next candidate
        }
      }
    }
    throw error;
  }
};

require.extensions['.ts'] = function (module, filename) {
  const source = require('node:fs').readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    filename,
    sourceMaps: 'inline',
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
