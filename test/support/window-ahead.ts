/**
 * A daily window of one hour starting `hoursAhead` whole hours from now (UTC), so it is shut now; with
 * the instant it opens, for tests that move a device's clock there.
 */
export function windowAhead(hoursAhead: number): { text: string; opensAt: number } {
  const opens = new Date(Date.now() + hoursAhead * 3600_000);
  opens.setUTCMinutes(0, 0, 0);
  const pad = (h: number): string => String(h).padStart(2, '0');
  const hour = opens.getUTCHours();
  return { text: `daily ${pad(hour)}:00-${pad((hour + 1) % 24)}:00 UTC`, opensAt: opens.getTime() };
}
