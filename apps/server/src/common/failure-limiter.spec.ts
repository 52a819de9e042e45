import { RateLimitedError } from '@ferry/protocol';
import { FailureLimiter } from './failure-limiter';

describe('FailureLimiter', () => {
  it('refuses a source after N failures a minute and lets it back in after the window', () => {
    let now = 1_000_000;
    const limiter = new FailureLimiter(3, () => now);
    for (let i = 0; i < 3; i += 1) {
      limiter.check('10.0.0.1', 'registration');
      limiter.fail('10.0.0.1');
    }
    expect(() => limiter.check('10.0.0.1', 'registration')).toThrow(RateLimitedError);
    expect(() => limiter.check('10.0.0.2', 'registration')).not.toThrow();
    now += 60_001;
    expect(() => limiter.check('10.0.0.1', 'registration')).not.toThrow();
  });
});
