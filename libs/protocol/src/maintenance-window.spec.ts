import { insideWindow, localWeekTime, nextWindowOpening, parseMaintenanceWindow } from './maintenance-window';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

describe('maintenance windows', () => {
  it('reads days, times and a zone', () => {
    expect(parseMaintenanceWindow('Mon-Fri 02:00-04:00 Europe/Berlin')).toEqual({
      days: [1, 2, 3, 4, 5],
      start: 120,
      end: 240,
      timeZone: 'Europe/Berlin',
    });
    expect(parseMaintenanceWindow('sat,SUN 22:30-24:00 UTC').days).toEqual([0, 6]);
    expect(parseMaintenanceWindow('Fri-Mon 23:00-01:00 America/New_York').days).toEqual([0, 1, 5, 6]);
    expect(parseMaintenanceWindow('daily  00:00-00:15  Asia/Kolkata').days).toHaveLength(7);
  });

  it.each([
    ['', /DAYS HH:MM-HH:MM ZONE/],
    ['Mon-Fri 02:00-04:00', /DAYS HH:MM-HH:MM ZONE/],
    ['Mon-Fri 02:00-04:00 Mars/Olympus', /not an IANA time zone/],
    ['Funday 02:00-04:00 UTC', /"Funday" is not a day/],
    ['Mon-Tue-Wed 02:00-04:00 UTC', /not a day or a range/],
    ['Mon 2:00-04:00 UTC', /"2:00" is not a time/],
    ['Mon 25:00-04:00 UTC', /"25:00" is not a time/],
    ['Mon 02:60-04:00 UTC', /"02:60" is not a time/],
    ['Mon 24:00-04:00 UTC', /"24:00" is not a time/],
    ['Mon 02:00-02:00 UTC', /empty window/],
    ['Mon 02:00 UTC', /not a time range/],
    [`Mon 02:00-04:00 ${'A'.repeat(200)}`, /at most 100 characters/],
  ])('refuses %j', (text, message) => {
    expect(() => parseMaintenanceWindow(text)).toThrow(message);
  });

  it('judges instants by the local time of the zone, not UTC', () => {
    const berlin = parseMaintenanceWindow('Mon-Fri 02:00-04:00 Europe/Berlin');
    // Wed 2026-01-14 02:30 in Berlin (CET, UTC+1) is 01:30 UTC.
    expect(insideWindow(berlin, at('2026-01-14T01:30:00Z'))).toBe(true);
    expect(insideWindow(berlin, at('2026-01-14T02:30:00Z'))).toBe(true);
    expect(insideWindow(berlin, at('2026-01-14T03:00:00Z'))).toBe(false);
    expect(insideWindow(berlin, at('2026-01-14T00:59:00Z'))).toBe(false);
    // Sat 02:30 in Berlin: not a weekday.
    expect(insideWindow(berlin, at('2026-01-17T01:30:00Z'))).toBe(false);
    // In summer (CEST, UTC+2) the same local window is an hour earlier in UTC.
    expect(insideWindow(berlin, at('2026-07-15T00:30:00Z'))).toBe(true);
    expect(insideWindow(berlin, at('2026-07-15T02:30:00Z'))).toBe(false);
    // Half-hour zone: 00:00-00:15 in Kolkata (UTC+5:30) is 18:30-18:45 UTC the day before.
    const kolkata = parseMaintenanceWindow('daily 00:00-00:15 Asia/Kolkata');
    expect(insideWindow(kolkata, at('2026-03-01T18:40:00Z'))).toBe(true);
    expect(insideWindow(kolkata, at('2026-03-01T18:45:00Z'))).toBe(false);
  });

  it('runs a window that ends before it starts into the next day', () => {
    const night = parseMaintenanceWindow('Sat 22:00-02:00 UTC');
    expect(insideWindow(night, at('2026-01-17T23:00:00Z'))).toBe(true); // Saturday
    expect(insideWindow(night, at('2026-01-18T01:59:00Z'))).toBe(true); // Sunday morning
    expect(insideWindow(night, at('2026-01-18T02:00:00Z'))).toBe(false);
    expect(insideWindow(night, at('2026-01-18T23:00:00Z'))).toBe(false); // Sunday night
    expect(insideWindow(night, at('2026-01-17T01:00:00Z'))).toBe(false); // Saturday morning (Friday had none)
  });

  it('finds the next opening, to the minute, across days and zones', () => {
    const berlin = parseMaintenanceWindow('Mon-Fri 02:00-04:00 Europe/Berlin');
    // Friday 12:00 UTC → Monday 02:00 CET = 01:00 UTC.
    expect(iso(nextWindowOpening(berlin, at('2026-01-16T12:00:00Z')))).toBe('2026-01-19T01:00:00.000Z');
    // Inside already: now.
    expect(nextWindowOpening(berlin, at('2026-01-14T01:30:10Z'))).toBe(at('2026-01-14T01:30:10Z'));
    const odd = parseMaintenanceWindow('Tue 03:07-03:09 America/New_York');
    expect(iso(nextWindowOpening(odd, at('2026-01-13T00:00:00Z')))).toBe('2026-01-13T08:07:00.000Z');
    const kathmandu = parseMaintenanceWindow('daily 01:00-02:00 Asia/Kathmandu'); // UTC+5:45
    expect(iso(nextWindowOpening(kathmandu, at('2026-01-13T00:00:00Z')))).toBe('2026-01-13T19:15:00.000Z');
  });

  it('follows daylight saving time changes', () => {
    // Berlin springs forward on Sun 2026-03-29 at 02:00 → 03:00: a 02:00-04:00 window that day
    // opens at 03:00 local (01:00 UTC) and lasts one hour.
    const sunday = parseMaintenanceWindow('Sun 02:00-04:00 Europe/Berlin');
    expect(iso(nextWindowOpening(sunday, at('2026-03-28T12:00:00Z')))).toBe('2026-03-29T01:00:00.000Z');
    expect(insideWindow(sunday, at('2026-03-29T01:59:00Z'))).toBe(true);
    expect(insideWindow(sunday, at('2026-03-29T02:00:00Z'))).toBe(false);
    // The week after (CEST) it opens at 00:00 UTC.
    expect(iso(nextWindowOpening(sunday, at('2026-03-30T00:00:00Z')))).toBe('2026-04-05T00:00:00.000Z');
    // Berlin falls back on Sun 2026-10-25 at 03:00 → 02:00: 02:00-04:00 local lasts three hours,
    // 00:00-03:00 UTC.
    expect(iso(nextWindowOpening(sunday, at('2026-10-24T12:00:00Z')))).toBe('2026-10-25T00:00:00.000Z');
    expect(insideWindow(sunday, at('2026-10-25T02:59:00Z'))).toBe(true);
    expect(insideWindow(sunday, at('2026-10-25T03:00:00Z'))).toBe(false);
    // New York springs forward on Sun 2026-03-08 at 02:00: a 02:15-02:45 window does not exist that
    // day, so the next opening is a week later.
    const gap = parseMaintenanceWindow('Sun 02:15-02:45 America/New_York');
    expect(iso(nextWindowOpening(gap, at('2026-03-07T12:00:00Z')))).toBe('2026-03-15T06:15:00.000Z');
    // Southern hemisphere: Sydney leaves DST on Sun 2026-04-05 (03:00 → 02:00).
    const sydney = parseMaintenanceWindow('Mon 09:00-10:00 Australia/Sydney');
    expect(iso(nextWindowOpening(sydney, at('2026-03-29T00:00:00Z')))).toBe('2026-03-29T22:00:00.000Z');
    expect(iso(nextWindowOpening(sydney, at('2026-04-04T00:00:00Z')))).toBe('2026-04-05T23:00:00.000Z');
  });

  it('reads the local weekday and time through Intl', () => {
    expect(localWeekTime(at('2026-01-01T00:30:00Z'), 'Pacific/Auckland')).toEqual({
      day: 4,
      minutes: 13 * 60 + 30,
    });
    expect(localWeekTime(at('2026-01-01T00:30:00Z'), 'America/Los_Angeles')).toEqual({
      day: 3,
      minutes: 16 * 60 + 30,
    });
  });
});
