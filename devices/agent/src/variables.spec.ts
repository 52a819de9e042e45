import { parseDeviceVariables, variablesNoticeVersion } from './variables';

const good = {
  version: 7,
  fleet: { SITE: 'north' },
  fleetServices: { web: { PORT: '80' } },
  device: {},
  deviceServices: { worker: { API_KEY: 's' } },
};

describe('the agent reads the variables answer and notices without zod', () => {
  it('takes a well-formed answer as it is', () => {
    expect(parseDeviceVariables(JSON.stringify(good))).toEqual(good);
  });

  it.each([
    ['not JSON', '{"version":', /JSON|Unexpected|Expected/],
    ['null', 'null', /not an object/],
    ['a negative version', JSON.stringify({ ...good, version: -1 }), /version/],
    ['a fractional version', JSON.stringify({ ...good, version: 1.5 }), /version/],
    ['a string version', JSON.stringify({ ...good, version: '7' }), /version/],
    ['a number as value', JSON.stringify({ ...good, fleet: { SITE: 5 } }), /fleet\.SITE/],
    ['an array as level', JSON.stringify({ ...good, device: ['A=1'] }), /device/],
    ['a missing level', JSON.stringify({ ...good, fleetServices: undefined }), /fleetServices/],
    ['a service that is not a map', JSON.stringify({ ...good, deviceServices: { worker: 'x' } }), /worker/],
    ['a nested object', JSON.stringify({ ...good, deviceServices: { w: { A: { b: 1 } } } }), /w\.A/],
  ])('refuses %s, naming what is wrong', (_what, text, reason) => {
    expect(() => parseDeviceVariables(text)).toThrow(reason);
  });

  it('reads the version of a notice, and nothing from anything else', () => {
    expect(variablesNoticeVersion(Buffer.from('{"version":3,"issuedAt":"2026-01-01T00:00:00Z"}'))).toBe(3);
    for (const bad of ['', '{', 'null', '[]', '{"version":"3"}', '{"version":-1}', '{"version":1e300}'])
      expect(variablesNoticeVersion(Buffer.from(bad))).toBeNull();
    // Over 4 KiB is refused even when it parses (all spaces would fail JSON.parse anyway).
    expect(variablesNoticeVersion(Buffer.from(`{"version":3}${' '.repeat(5000)}`))).toBeNull();
  });
});
