import fc from 'fast-check';
import { redactUrl } from './redact-url';

describe('redactUrl', () => {
  it.each([
    ['/v1/events?token=SECRET&fleet=pumps', '/v1/events?token=[Redacted]&fleet=pumps'],
    ['/v1/events?%74oken=SECRET', '/v1/events?token=[Redacted]'],
    ['/v1/events?TOKEN=SECRET', '/v1/events?TOKEN=[Redacted]'],
    ['/v1/events?token[0]=SECRET', '/v1/events?token%5B0%5D=[Redacted]'],
    ['/v1/events?a=1&apiKey=SECRET&token=SECRET', '/v1/events?a=1&apiKey=[Redacted]&token=[Redacted]'],
    ['/v1/fleets', '/v1/fleets'],
    ['/v1/x?%E0%A4%A=SECRET&%74oken=SECRET', '/v1/x?%EF%BF%BD%25A=SECRET&token=[Redacted]'],
  ])('%s → %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it('never lets the value of a token key through, however the key is encoded (property)', () => {
    const encodings = fc.constantFrom(
      'token',
      '%74oken',
      '%74%6F%6B%65%6E',
      'TOKEN',
      'Token',
      'access_token',
      'x-api-key',
    );
    fc.assert(
      fc.property(
        encodings,
        fc.string(),
        fc.array(fc.tuple(fc.string(), fc.string())),
        (key, noise, others) => {
          const secret = `SECRET${Math.random().toString(36).slice(2)}`;
          const query = [
            ...others.map(([k, v]) => `${encodeURIComponent(`n${k}`)}=${encodeURIComponent(v)}`),
            `${key}=${secret}`,
          ].join('&');
          const logged = redactUrl(`/v1/events${encodeURIComponent(noise)}?${query}`);
          return !logged.includes(secret);
        },
      ),
    );
  });
});
