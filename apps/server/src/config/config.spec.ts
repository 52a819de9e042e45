import { ConfigError, loadConfig } from './config';

describe('loadConfig', () => {
  it('applies the embedded defaults', () => {
    const config = loadConfig({});
    expect(config.http.port).toBe(8080);
    expect(config.mqtt.port).toBe(1883);
    expect(config.database.kind).toBe('sqlite');
    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.adminToken).toBeNull();
  });

  it('picks PostgreSQL when DATABASE_URL says so', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@127.0.0.1/db' }).database).toEqual({
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
  ])('names %s when its value %s is wrong', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid configuration:\\n  - ${name}=`));
  });

  it('names MQTT variables that only make sense together', () => {
    expect(() => loadConfig({ MQTT_TLS_CERT: '/x/cert.pem' })).toThrow(/MQTT_TLS_CERT and MQTT_TLS_KEY/);
    expect(() => loadConfig({ MQTT_SERVER_USERNAME: 'ferry' })).toThrow(/MQTT_SERVER_PASSWORD/);
    expect(() => loadConfig({ MQTT_URL: 'mqtt://127.0.0.1:1883', MQTT_CLUSTER: 'redis' })).toThrow(
      /MQTT_CLUSTER/,
    );
    const config = loadConfig({
      MQTT_WS: 'true',
      MQTT_CLUSTER: 'redis',
      MQTT_TLS_CERT: 'c.pem',
      MQTT_TLS_KEY: 'k.pem',
    });
    expect(config.mqtt.websocket).toBe(true);
    expect(config.mqtt.cluster).toBe('redis');
    expect(config.mqtt.tls?.certFile).toMatch(/\/c\.pem$/);
    expect(config.mqtt.serverCredentials).toBeNull();
  });
});
