import { deviceMayPublish, deviceMayReceive, deviceMaySubscribe, deviceTopic } from './topics';

const a = '0123456789abcdef0123456789abcdef';
const b = 'fedcba9876543210fedcba9876543210';

describe('device topic access (deny by default)', () => {
  it('lets a device publish only its own state and presence', () => {
    expect(deviceMayPublish(a, deviceTopic(a, 'state'))).toBe(true);
    expect(deviceMayPublish(a, deviceTopic(a, 'presence'))).toBe(true);
    expect(deviceMayPublish(a, deviceTopic(a, 'target'))).toBe(false);
    expect(deviceMayPublish(a, deviceTopic(b, 'state'))).toBe(false);
    expect(deviceMayPublish(a, `${deviceTopic(a, 'state')}/x`)).toBe(false);
    expect(deviceMayPublish(a, '$SYS/broker/x')).toBe(false);
    expect(deviceMayPublish(a, 'anything')).toBe(false);
  });

  it('lets a device subscribe only inside its own subtree', () => {
    for (const ok of ['target', 'variables', '+', '#'])
      expect(deviceMaySubscribe(a, `ferry/v1/devices/${a}/${ok}`)).toBe(true);
    for (const no of [
      '#',
      '+/#',
      '$SYS/#',
      `$share/g/ferry/v1/devices/${a}/target`,
      'ferry/v1/devices/+/target',
      'ferry/v1/devices/#',
      `ferry/v1/devices/${b}/target`,
      `ferry/v1/devices/${a}/target/#`,
      `ferry/v1/devices/${a}/state/+`,
      `ferry/v1/devices/${b}/variables`,
      'ferry/v1/devices/+/variables',
      `ferry/v1/devices/${a}/variables/#`,
      `ferry/v1/devices/${a}`,
    ])
      expect(deviceMaySubscribe(a, no)).toBe(false);
  });

  it('delivers to a device only its own target and variables notices', () => {
    expect(deviceMayReceive(a, deviceTopic(a, 'target'))).toBe(true);
    expect(deviceMayReceive(a, deviceTopic(a, 'variables'))).toBe(true);
    expect(deviceMayReceive(a, deviceTopic(b, 'variables'))).toBe(false);
    expect(deviceMayPublish(a, deviceTopic(a, 'variables'))).toBe(false);
    expect(deviceMayReceive(a, deviceTopic(a, 'state'))).toBe(false);
    expect(deviceMayReceive(a, deviceTopic(b, 'target'))).toBe(false);
  });
});
