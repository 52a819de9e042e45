// Zod-free like states.ts: the device agent bundles this through `@ferry/protocol/wire`.

/**
 * A weekly maintenance window in a time zone, as written `Mon-Fri 02:00-04:00 Europe/Berlin`:
 * installs may start only inside it. Times are local wall-clock times of `timeZone`, so the window
 * follows daylight saving time; an end not after the start crosses midnight (`Sat 22:00-02:00` runs
 * into Sunday).
 */
export interface MaintenanceWindow {
  /** Days the window opens on, 0 = Sunday … 6 = Saturday. */
  days: number[];
  /** Minutes after local midnight it opens and closes (close up to 1440 = 24:00). */
  start: number;
  end: number;
  /** IANA time zone, e.g. `Europe/Berlin`. */
  timeZone: string;
}

/** What a device reports (`deferred`, in `error`) while an update waits for its window. */
export const MAINTENANCE_WAIT = 'waiting for maintenance window';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MAX_TEXT = 100;

function dayIndex(name: string): number {
  const i = DAYS.indexOf(name.toLowerCase());
  if (i < 0) throw new Error(`"${name}" is not a day (Mon, Tue, … Sun)`);
  return i;
}

function minutesOf(text: string, allow24: boolean): number {
  const match = /^(\d{2}):(\d{2})$/.exec(text);
  const hours = match ? Number(match[1]) : NaN;
  const minutes = match ? Number(match[2]) : NaN;
  if (!(hours <= 23 || (allow24 && hours === 24 && minutes === 0)) || !(minutes <= 59))
    throw new Error(`"${text}" is not a time such as 02:00`);
  return hours * 60 + minutes;
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads `Mon-Fri 02:00-04:00 Europe/Berlin`: days (`Mon`, `Sat,Sun`, `Mon-Wed,Fri`, `daily`), a
 * start and end time, an IANA zone. Throws an Error saying what is wrong.
 */
export function parseMaintenanceWindow(text: string): MaintenanceWindow {
  if (typeof text !== 'string' || text.length > MAX_TEXT)
    throw new Error(`a maintenance window is a text of at most ${MAX_TEXT} characters`);
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 3)
    throw new Error(`"${text}" is not DAYS HH:MM-HH:MM ZONE, e.g. Mon-Fri 02:00-04:00 Europe/Berlin`);
  const [dayText, timeText, timeZone] = parts as [string, string, string];
  const days = new Set<number>();
  if (dayText.toLowerCase() === 'daily') for (let d = 0; d < 7; d += 1) days.add(d);
  else
    for (const item of dayText.split(',')) {
      const [from, to, extra] = item.split('-');
      if (extra !== undefined || !from) throw new Error(`"${item}" is not a day or a range such as Mon-Fri`);
      const first = dayIndex(from);
      const last = to === undefined ? first : dayIndex(to);
      for (let d = first; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === last) break;
      }
    }
  const times = timeText.split('-');
  if (times.length !== 2) throw new Error(`"${timeText}" is not a time range such as 02:00-04:00`);
  const start = minutesOf(times[0]!, false);
  const end = minutesOf(times[1]!, true);
  if (start === end) throw new Error(`"${timeText}" is an empty window`);
  if (!isTimeZone(timeZone)) throw new Error(`"${timeZone}" is not an IANA time zone such as Europe/Berlin`);
  return { days: [...days].sort((a, b) => a - b), start, end, timeZone };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The local weekday (0 = Sunday) and minutes after midnight of instant `ms` in `timeZone`. */
export function localWeekTime(ms: number, timeZone: string): { day: number; minutes: number } {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
    });
    formatters.set(timeZone, format);
  }
  let day = 0;
  let minutes = 0;
  for (const part of format.formatToParts(new Date(ms))) {
    if (part.type === 'weekday') day = dayIndex(part.value);
    else if (part.type === 'hour') minutes += Number(part.value) * 60;
    else if (part.type === 'minute') minutes += Number(part.value);
  }
  return { day, minutes };
}

/** Whether instant `ms` is inside the window. */
export function insideWindow(window: MaintenanceWindow, ms: number): boolean {
  const { day, minutes } = localWeekTime(ms, window.timeZone);
  const crosses = window.end <= window.start;
  if (window.days.includes(day) && minutes >= window.start && (crosses || minutes < window.end)) return true;
  return crosses && window.days.includes((day + 6) % 7) && minutes < window.end;
}

const MINUTE_MS = 60_000;

/**
 * The first instant at or after `ms` inside the window (epoch ms, on a whole minute unless `ms` is
 * inside already). Found by steps of half the window's length (at most 15 minutes; zone offsets are
 * whole quarter hours), then to the minute between the last step outside and the first inside.
 */
export function nextWindowOpening(window: MaintenanceWindow, ms: number): number {
  if (insideWindow(window, ms)) return ms;
  const length = window.end > window.start ? window.end - window.start : window.end + 1440 - window.start;
  const step = Math.max(1, Math.min(15, Math.floor(length / 2))) * MINUTE_MS;
  const from = Math.ceil(ms / MINUTE_MS) * MINUTE_MS;
  for (let t = from; t <= ms + 8 * 24 * 3600_000; t += step) {
    if (!insideWindow(window, t)) continue;
    if (t === from) return t;
    // Outside at t - 15 min, inside at t: the opening is the first inside minute between them.
    let lo = t - step;
    let hi = t;
    while (hi - lo > MINUTE_MS) {
      const mid = lo + Math.max(1, Math.floor((hi - lo) / MINUTE_MS / 2)) * MINUTE_MS;
      if (insideWindow(window, mid)) hi = mid;
      else lo = mid;
    }
    return hi;
  }
  throw new Error('the window never opens');
}
