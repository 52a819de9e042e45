/** 1536 → "1.5 KiB". */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** "12 s ago", "3 min ago", "2 h ago", or a date. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function percent(part: number, whole: number): string {
  return whole > 0 ? `${Math.round((part * 100) / whole)} %` : '–';
}

export function short(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '–';
}

/** A release as people name it ("v3"), its short id when its version is unknown, or `none`. */
export function releaseLabel(id: string | null, versions: ReadonlyMap<string, number>, none: string): string {
  if (!id) return none;
  const version = versions.get(id);
  return version === undefined ? short(id) : `v${version}`;
}

/** "99.9 % (700× smaller)": what sending `part` instead of `whole` saves. */
export function saving(part: number, whole: number): string {
  if (whole <= 0) return '–';
  const pct = (1 - part / whole) * 100;
  const text = pct >= 99 || pct <= -99 ? `${pct.toFixed(1)} %` : `${Math.round(pct)} %`;
  return part > 0 && whole / part >= 2 ? `${text} (${Math.round(whole / part)}× smaller)` : text;
}

/** "1 device", "2 devices". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
