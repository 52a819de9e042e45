import { parseBatches, parseDuration, parsePercent, parseRamp, parseStartAt, parseTagFilter } from './parse';

describe('rollout option parsers', () => {
  it.each([
    ['300', 300],
    ['90s', 90],
    ['5m', 300],
    ['1h30m', 5400],
    ['2d', 172800],
    ['1.5', 1.5],
    ['500ms', 0.5],
    ['0', 0],
  ])('reads the duration %s as %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', 'm', '5 minutes', '-1', '1h-5m'])('refuses the duration "%s"', (text) => {
    expect(() => parseDuration(text)).toThrow(/expected a duration/);
  });

  it('reads percentages with or without the sign, within 0..100', () => {
    expect(parsePercent('10%')).toBe(10);
    expect(parsePercent('12.5')).toBe(12.5);
    expect(() => parsePercent('101%')).toThrow(/percentage/);
    expect(() => parsePercent('ten')).toThrow(/percentage/);
  });

  it('reads batch ends as counts and percentages', () => {
    expect(parseBatches('1,10%,50%,100%')).toEqual([1, '10%', '50%', '100%']);
    expect(parseBatches(' 2 , 100% ')).toEqual([2, '100%']);
    expect(() => parseBatches('1,,100%')).toThrow(/"" is not a device count/);
    expect(() => parseBatches('0')).toThrow(/"0"/);
    expect(() => parseBatches('150%')).toThrow(/"150%"/);
  });

  it('reads a ramp as base,factor[,max]', () => {
    expect(parseRamp('1,2')).toEqual({ base: 1, factor: 2 });
    expect(parseRamp(' 5 , 1.5 , 100 ')).toEqual({ base: 5, factor: 1.5, max: 100 });
    for (const bad of ['', '1', '1,x', '1,2,3,4', '-1,2', '1,2,'])
      expect(() => parseRamp(bad)).toThrow(/base,factor/);
  });

  it('reads a start time with a zone, or a duration from now', () => {
    expect(parseStartAt('2026-06-01T02:00:00+02:00')).toBe('2026-06-01T02:00:00+02:00');
    expect(parseStartAt('+2h', Date.parse('2026-01-01T00:00:00Z'))).toBe('2026-01-01T02:00:00.000Z');
    for (const bad of ['tomorrow', '2026-06-01T02:00:00', '2026-99-01T00:00:00Z', ''])
      expect(() => parseStartAt(bad)).toThrow(/with a zone/);
    expect(() => parseStartAt('+soon')).toThrow(/duration/);
  });

  it('reads tag filters with and without a value', () => {
    expect(parseTagFilter('site=oslo')).toEqual({ name: 'site', value: 'oslo' });
    expect(parseTagFilter('site=')).toEqual({ name: 'site', value: '' });
    expect(parseTagFilter('canary')).toEqual({ name: 'canary' });
    expect(() => parseTagFilter('=x')).toThrow(/key or key=value/);
  });
});
