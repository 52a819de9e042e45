import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

/**
 * `.pipe()` on a Node stream forwards no error and destroys nothing when a stage fails: an error in
 * a gunzip joined that way crashed the server (issue 11). Every stream chain uses `stream.pipeline`
 * (or `stream/promises`), which does both. The receiver's type tells a Node stream (it has
 * `unpipe`) from an rxjs Observable, whose `.pipe()` is fine.
 */
const ferry = {
  rules: {
    'no-stream-pipe': {
      meta: {
        type: 'problem',
        schema: [],
        messages: {
          pipe: 'Join streams with stream.pipeline (node:stream/promises), not .pipe(): .pipe() neither forwards errors nor destroys the other stages.',
        },
      },
      create(context) {
        const services = context.sourceCode.parserServices;
        return {
          "CallExpression > MemberExpression.callee[property.name='pipe']"(node) {
            const type = services.getTypeAtLocation(node.object);
            const isNodeStream = type.isUnion()
              ? type.types.some((t) => t.getProperty('unpipe') !== undefined)
              : type.getProperty('unpipe') !== undefined;
            if (isNodeStream) context.report({ node, messageId: 'pipe' });
          },
        };
      },
    },
  },
};

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      'node_modules/**',
      'coverage/**',
      'bench/corpus/**',
      'bench/.work/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'off',
    },
  },
  {
    files: ['apps/**/*.ts', 'libs/**/*.ts', 'devices/**/*.ts'],
    plugins: { ferry },
    rules: { 'ferry/no-stream-pipe': 'error' },
  },
  {
    files: ['**/*.spec.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  prettier,
);
