import { ago, bytes, duration, fields, percent, plural, shortDigest, table, time } from './format';

describe('output formatting', () => {
  it('prints byte counts for people', () => {
    expect(bytes(0)).toBe('0 B');
    expect(bytes(1023)).toBe('1023 B');
    expect(bytes(1024)).toBe('1.00 KiB');
    expect(bytes(1024 * 1024)).toBe('1.00 MiB');
    expect(bytes(1536)).toBe('1.50 KiB');
    expect(bytes(12.3 * 1024 * 1024)).toBe('12.3 MiB');
    expect(bytes(null)).toBe('-');
  });

  it('prints percentages, digests, times, durations and plurals', () => {
    expect(percent(0.8766)).toBe('87.7%');
    expect(percent(null)).toBe('-');
    expect(shortDigest(`sha256:${'ab'.repeat(32)}`)).toBe('abababababab');
    expect(time('2026-11-30T01:02:03.456Z')).toBe('2026-11-30 01:02:03');
    expect(ago('2026-11-30T01:00:00Z', Date.parse('2026-11-30T01:05:30Z'))).toBe('5m ago');
    expect(ago(null)).toBe('never');
    expect([duration(0.5), duration(90), duration(300), duration(5400)]).toEqual([
      '0.5s',
      '1m30s',
      '5m',
      '1h30m',
    ]);
    expect([plural(1, 'layer'), plural(2, 'layer')]).toEqual(['1 layer', '2 layers']);
  });

  it('aligns table columns and leaves no trailing spaces', () => {
    expect(
      table(
        ['A', 'LONGER'],
        [
          ['xyz', 1],
          ['', 22],
        ],
      ),
    ).toBe('A    LONGER\nxyz  1\n     22\n');
    expect(
      fields([
        ['a', 1],
        ['long', 'x'],
      ]),
    ).toBe('a:    1\nlong: x\n');
  });
});
