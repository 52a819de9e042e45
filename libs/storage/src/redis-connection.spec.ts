import { ConfigError } from '@ferry/protocol';
import { loadRedisSentinel, redisOptions } from './redis-connection';

/** The message of the configuration error `f` throws. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('no configuration error');
}

describe('Redis Sentinel configuration', () => {
  const ok = {
    REDIS_SENTINELS: '127.0.0.1:26379, [::1]:26380,sentinel-3.example:26381',
    REDIS_SENTINEL_NAME: 'ferry',
  };

  it('reads host:port lists, IPv6 in brackets, and is null when unset', () => {
    expect(loadRedisSentinel({})).toBeNull();
    expect(loadRedisSentinel(ok)).toEqual({
      hosts: [
        { host: '127.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 'sentinel-3.example', port: 26381 },
      ],
      name: 'ferry',
      password: null,
    });
  });

  it.each([
    ['', /REDIS_SENTINELS/],
    ['127.0.0.1', /"127.0.0.1" is not host:port/],
    ['127.0.0.1:0', /is not host:port/],
    ['127.0.0.1:65536', /is not host:port/],
    ['127.0.0.1:26379,', /"" is not host:port/],
    ['::1:26379', /is not host:port/],
    ['host;rm -rf /:26379', /is not host:port/],
    ['héllo:26379', /is not host:port/],
    ['redis://127.0.0.1:26379', /is not host:port/],
    [`${'a'.repeat(254)}:26379`, /is not host:port/],
    [Array.from({ length: 33 }, (_, i) => `127.0.0.${i + 1}:26379`).join(','), /at most 32 sentinels/],
    ['x:1,'.repeat(2000), /REDIS_SENTINELS/],
  ])('refuses bad REDIS_SENTINELS #%# with a message naming it', (value, message) => {
    const text = configError(() => loadRedisSentinel({ ...ok, REDIS_SENTINELS: value }));
    expect(text).toMatch(/REDIS_SENTINELS/);
    expect(text).toMatch(message);
    // An echoed value is cut short: a huge variable does not flood the log.
    expect(text.length).toBeLessThan(1000);
  });

  it.each(['', 'my master', 'a/b', 'x'.repeat(65), 'name\n'])('refuses REDIS_SENTINEL_NAME=%j', (name) => {
    expect(configError(() => loadRedisSentinel({ ...ok, REDIS_SENTINEL_NAME: name }))).toMatch(
      /REDIS_SENTINEL_NAME/,
    );
  });

  it('needs both variables, and a password only with them, never echoing the password', () => {
    expect(configError(() => loadRedisSentinel({ REDIS_SENTINELS: ok.REDIS_SENTINELS }))).toMatch(
      /set both or neither/,
    );
    expect(configError(() => loadRedisSentinel({ REDIS_SENTINEL_NAME: 'ferry' }))).toMatch(
      /set both or neither/,
    );
    const secret = 'hunter2-very-secret';
    const lone = configError(() => loadRedisSentinel({ REDIS_SENTINEL_PASSWORD: secret }));
    expect(lone).toMatch(/only with REDIS_SENTINELS/);
    expect(lone).not.toContain(secret);
    const long = configError(() => loadRedisSentinel({ ...ok, REDIS_SENTINEL_PASSWORD: secret.repeat(40) }));
    expect(long).toMatch(/REDIS_SENTINEL_PASSWORD/);
    expect(long).not.toContain(secret);
    expect(loadRedisSentinel({ ...ok, REDIS_SENTINEL_PASSWORD: secret })?.password).toBe(secret);
  });

  it("takes user, password, database and TLS from REDIS_URL, and the sentinels' password apart", () => {
    const sentinel = { ...loadRedisSentinel(ok)!, password: 's3' };
    expect(
      redisOptions({ url: 'rediss://app:p%40ss@ignored:6379/3', sentinel }, { lazyConnect: true }),
    ).toEqual({
      sentinels: sentinel.hosts,
      name: 'ferry',
      sentinelPassword: 's3',
      username: 'app',
      password: 'p@ss',
      db: 3,
      tls: {},
      enableTLSForSentinelMode: true,
      lazyConnect: true,
    });
    expect(redisOptions('redis://127.0.0.1:6379/0')).toEqual({ url: 'redis://127.0.0.1:6379/0' });
  });
});
