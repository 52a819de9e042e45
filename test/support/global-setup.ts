import { randomBytes } from 'node:crypto';

/**
 * Jest's global setup: one tag for this run, inherited by every test worker (they start after this),
 * so each Redis name a test makes carries it (test/support/redis-keys.ts) and the global teardown can
 * find what the run left.
 */
export default function globalSetup(): void {
  process.env.FERRY_TEST_RUN ??= randomBytes(3).toString('hex');
}
