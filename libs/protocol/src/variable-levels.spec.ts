import { VariableSetting, resolveVariables, variableLevel } from './variable-levels';

const at = (name: string, value: string, device: boolean, service: string | null): VariableSetting => ({
  name,
  value,
  service,
  level: variableLevel(device, service),
});

describe('variable precedence (balena: device+service > device > fleet+service > fleet)', () => {
  const settings = [
    at('A', 'device+web', true, 'web'),
    at('A', 'fleet', false, null),
    at('A', 'device', true, null),
    at('A', 'fleet+web', false, 'web'),
    at('B', 'fleet+web', false, 'web'),
    at('B', 'device', true, null),
    at('C', 'fleet+worker', false, 'worker'),
    at('D', 'fleet', false, null),
  ];

  it('lets the most specific level win whatever the order of the settings', () => {
    const web = resolveVariables(settings, 'web');
    expect(web.map((s) => [s.name, s.value])).toEqual([
      ['A', 'device+web'],
      ['B', 'device'],
      ['D', 'fleet'],
    ]);
    expect(resolveVariables([...settings].reverse(), 'web')).toEqual(web);
  });

  it("ignores other services' settings, and a service named nowhere gets the service-less levels", () => {
    expect(resolveVariables(settings, 'worker').map((s) => [s.name, s.value])).toEqual([
      ['A', 'device'],
      ['B', 'device'],
      ['C', 'fleet+worker'],
      ['D', 'fleet'],
    ]);
    expect(resolveVariables(settings, null).map((s) => s.value)).toEqual(['device', 'device', 'fleet']);
  });
});
