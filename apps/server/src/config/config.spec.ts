import { ConfigError, loadConfig } from './config';

const INSTALL = '0123456789abcdef';

describe('loadConfig', () => {
  it('applies the embedded defaults', () => {
    const config = loadConfig({}, INSTALL);
    expect(config.http.port).toBe(8080);
    expect(config.mqtt.port).toBe(1883);
    expect(config.database.kind).toBe('sqlite');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.adminToken).toBeNull();
  });

  it('reads FERRY_NOTICE_RESEND_SECONDS (30 by default) and refuses what is not a positive number up to an hour', () => {
    expect(loadConfig({}, INSTALL).noticeResendMs).toBe(30_000);
    expect(loadConfig({ FERRY_NOTICE_RESEND_SECONDS: '0.5' }, INSTALL).noticeResendMs).toBe(500);
    for (const bad of ['0', '-1', '3601', 'soon', '1e400'])
      expect(() => loadConfig({ FERRY_NOTICE_RESEND_SECONDS: bad }, INSTALL)).toThrow(
        /FERRY_NOTICE_RESEND_SECONDS/,
      );
  });

  it('names the Redis namespaces after the install unless REDIS_PREFIX and FERRY_QUEUE_PREFIX are set', () => {
    const config = loadConfig({}, INSTALL);
    expect(config.installId).toBe(INSTALL);
    expect(config.queuePrefix).toBe(`ferry-${INSTALL}`);
    expect(config.redisPrefix).toBe(`ferry:${INSTALL}:`);
    const set = loadConfig({ FERRY_QUEUE_PREFIX: 'shop', REDIS_PREFIX: 'shop:' }, INSTALL);
    expect([set.queuePrefix, set.redisPrefix]).toEqual(['shop', 'shop:']);
  });

  it('trusts no proxy unless TRUSTED_PROXIES names them (addresses and CIDR ranges)', () => {
    expect(loadConfig({}, INSTALL).http.trustedProxies).toEqual([]);
    expect(
      loadConfig({ TRUSTED_PROXIES: ' 10.0.0.5, 192.168.0.0/16,::1,fd00::/8 ' }, INSTALL).http.trustedProxies,
    ).toEqual(['10.0.0.5', '192.168.0.0/16', '::1', 'fd00::/8']);
  });

  it('picks PostgreSQL when DATABASE_URL says so', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@127.0.0.1/db' }, INSTALL).database).toEqual({
      kind: 'postgres',
      url: 'postgres://u@127.0.0.1/db',
    });
  });

  it.each([
    ['PORT', 'eighty'],
    ['MQTT_PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://nope'],
    ['FERRY_ADMIN_TOKEN', 'short'],
    ['FERRY_MAX_RELEASE_BYTES', '-5'],
    ['MQTT_CLUSTER', 'zookeeper'],
    ['MQTT_WS', 'yes please'],
    ['REDIS_PREFIX', 'no spaces'],
    ['TRUSTED_PROXIES', 'proxy.example.com'],
    ['TRUSTED_PROXIES', '10.0.0.0/33'],
    ['TRUSTED_PROXIES', '10.0.0.1,loopback'],
    ['MQTT_HEARTBEAT_SECONDS', '0'],
  ])('names %s when its value %s is wrong', (name, value) => {
    expect(() => loadConfig({ [name]: value }, INSTALL)).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value }, INSTALL)).toThrow(
      new RegExp(`^invalid configuration:\\n  - ${name}=`),
    );
  });

  it('names MQTT variables that only make sense together', () => {
    expect(() => loadConfig({ MQTT_TLS_CERT: '/x/cert.pem' }, INSTALL)).toThrow(
      /MQTT_TLS_CERT and MQTT_TLS_KEY/,
    );
    expect(() => loadConfig({ MQTT_SERVER_USERNAME: 'ferry' }, INSTALL)).toThrow(/MQTT_SERVER_PASSWORD/);
    expect(() => loadConfig({ MQTT_URL: 'mqtt://127.0.0.1:1883', MQTT_CLUSTER: 'redis' }, INSTALL)).toThrow(
      /MQTT_CLUSTER/,
    );
    const config = loadConfig(
      {
        MQTT_WS: 'true',
        MQTT_CLUSTER: 'redis',
        MQTT_TLS_CERT: 'c.pem',
        MQTT_TLS_KEY: 'k.pem',
      },
      INSTALL,
    );
    expect(config.mqtt.websocket).toBe(true);
    expect(config.mqtt.cluster).toBe('redis');
    expect(config.mqtt.tls?.certFile).toMatch(/\/c\.pem$/);
    expect(config.mqtt.serverCredentials).toBeNull();
  });
});
