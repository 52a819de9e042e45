/**
 * Bytes for people: `512 B`, `1.5 KiB`, `12.3 MiB`. Kept rather than pretty-bytes (ESM-only since 6,
 * which the CommonJS CLI cannot require); layer sizes read in binary units here and in the dashboard.
 */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** A percentage with one decimal, or `-`. */
export function percent(fraction: number | null | undefined): string {
  return fraction === null || fraction === undefined ? '-' : `${(100 * fraction).toFixed(1)}%`;
}

/** `sha256:0123456789ab…` → `0123456789ab`: enough to tell layers apart in a table. */
export function shortDigest(digest: string | null | undefined): string {
  if (!digest) return '-';
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

/** An ISO time as `2026-11-30 01:23:45`, in UTC like the server stores it. */
export function time(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}

/** How long ago an ISO time was: `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86400)}d ago`;
}

/** A duration in seconds as `45s`, `5m`, `1h30m`. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Number(seconds.toFixed(1))}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${seconds % 60 ? `${Math.round(seconds % 60)}s` : ''}`;
  const minutes = Math.floor((seconds % 3600) / 60);
  return `${Math.floor(seconds / 3600)}h${minutes ? `${minutes}m` : ''}`;
}

/**
 * Left-aligned columns separated by two spaces; the last column is not padded. Kept rather than
 * cli-table3: kubectl-style plain columns are what operators grep and awk, box borders are not.
 */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return (
    cells
      .map((row) =>
        row
          .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** `label: value` lines with the values aligned. */
export function fields(pairs: [string, string | number][]): string {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 1;
  return pairs.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`).join('\n') + '\n';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** `1 layer`, `2 layers`. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
