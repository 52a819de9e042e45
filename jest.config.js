/**
 * One jest run for the whole monorepo: unit specs beside the code, end-to-end suites in test/.
 * Nest 12 and Aedes ship as ES modules; jest's CommonJS runtime cannot require them on Node 20,
 * so those packages are transformed to CommonJS by swc like our own sources.
 * @type {import('jest').Config}
 */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  },
];
const esmPackages = [
  '@nestjs',
  'aedes',
  'file-type',
  'strtok3',
  'token-types',
  'uint8array-extras',
  '@tokenizer',
  'load-esm',
];
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/devices', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e.ts'],
  // The ARM suite runs under qemu and takes minutes: only by `npm run test:arm`.
  testPathIgnorePatterns: [
    '/node_modules/',
    '/dist/',
    ...(process.env.FERRY_TEST_ARM === '1' ? [] : ['/test/agent-arm\\.e2e\\.ts$']),
  ],
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: [`/node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleNameMapper: {
    '^@ferry/protocol$': '<rootDir>/libs/protocol/src',
    '^@ferry/protocol/wire$': '<rootDir>/libs/protocol/src/wire',
    '^@ferry/delta$': '<rootDir>/libs/delta/src',
    '^@ferry/delta/decoder$': '<rootDir>/libs/delta/src/decoder',
    '^@ferry/storage$': '<rootDir>/libs/storage/src',
    '^@ferry/storage/files$': '<rootDir>/libs/storage/src/files',
    '^@ferry/logging$': '<rootDir>/libs/logging/src',
  },
  // Tags this run's Redis names, and fails the run if any of them is left in Redis at the end.
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
};
