/** Parsers of option values; plain functions (see `optionParser` in action.ts for commander). */
import { InvalidArgumentError } from 'commander';
import { InputError } from './errors';

/**
 * `300`, `300s`, `5m`, `1h30m`, `2d`, `1.5`, `500ms` → seconds. Kept rather than ms / parse-duration:
 * those accept "5 minutes" or return undefined/NaN on junk; a flag must refuse junk with a message.
 */
export function parseDuration(text: string): number {
  const plain = /^(\d+(?:\.\d+)?)(ms)?$/.exec(text.trim());
  if (plain) return Number(plain[1]) / (plain[2] ? 1000 : 1);
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text.trim());
  if (!text.trim() || !match)
    throw new InputError('expected a duration such as 300, 90s, 5m, 1h30m or 500ms');
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return Number(d) * 86400 + Number(h) * 3600 + Number(m) * 60 + Number(s);
}

/** `10%` or `10` → 10 (a percentage, 0 to 100). */
export function parsePercent(text: string): number {
  const match = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(text.trim());
  const value = match ? Number(match[1]) : NaN;
  if (!(value >= 0 && value <= 100)) throw new InputError('expected a percentage such as 10%');
  return value;
}

/** `1,10%,50%,100%` → `[1, "10%", "50%", "100%"]`: device counts and percentages, cumulative. */
export function parseBatches(text: string): (number | string)[] {
  const parts = text.split(',').map((p) => p.trim());
  return parts.map((part) => {
    if (/^\d+$/.test(part) && Number(part) > 0) return Number(part);
    if (/^\d{1,3}(\.\d{1,2})?%$/.test(part) && parseFloat(part) > 0 && parseFloat(part) <= 100) return part;
    throw new InputError(`"${part}" is not a device count or a percentage such as 10% (e.g. 1,10%,50%,100%)`);
  });
}

/** `1,2` → `{base: 1, factor: 2}`; `1,1.5,50` also caps each batch at 50 devices. */
export function parseRamp(text: string): { base: number; factor: number; max?: number } {
  const match = /^\s*(\d+)\s*,\s*(\d+(?:\.\d+)?)\s*(?:,\s*(\d+)\s*)?$/.exec(text);
  if (!match) throw new InputError('expected base,factor[,max] such as 1,2 or 1,1.5,50');
  const [, base, factor, max] = match;
  return { base: Number(base), factor: Number(factor), ...(max !== undefined ? { max: Number(max) } : {}) };
}

/**
 * `2026-06-01T02:00:00+02:00` (ISO 8601 with a zone) as given, or `+2h` (a duration from `now`) as
 * that time in UTC.
 */
export function parseStartAt(text: string, now = Date.now()): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('+')) return new Date(now + parseDuration(trimmed.slice(1)) * 1000).toISOString();
  if (!/(Z|[+-]\d{2}:\d{2})$/.test(trimmed) || Number.isNaN(Date.parse(trimmed)))
    throw new InputError('expected a time with a zone such as 2026-06-01T02:00:00+02:00, or +2h from now');
  return trimmed;
}

/** `site=oslo` → `{name: 'site', value: 'oslo'}`; `site` → any value. */
export function parseTagFilter(text: string): { name: string; value?: string } {
  const at = text.indexOf('=');
  if (at === 0 || text === '') throw new InputError('expected key or key=value');
  return at < 0 ? { name: text } : { name: text.slice(0, at), value: text.slice(at + 1) };
}

/** A commander option value that must be a whole number of at least 1 (`--version 3`, `--threshold 2`). */
export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive whole number');
  }
  return n;
}

const RATE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kbit: 1000 / 8,
  mbit: 1000 ** 2 / 8,
  gbit: 1000 ** 3 / 8,
};

/**
 * A download rate cap → bytes per second: `500KB/s`, `2MB/s`, `1.5MiB/s`, `8Mbit/s`, `250000` (bytes
 * per second); `0` or `none` lifts a cap.
 */
export function parseRate(text: string): number {
  if (/^(0|none)$/i.test(text.trim())) return 0;
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]i?b|[kmg]bit|b)?(?:\/s|ps)?$/i.exec(text.trim());
  const unit = RATE_UNITS[(match?.[2] ?? 'b').toLowerCase()];
  const value = match && unit ? Math.round(Number(match[1]) * unit) : NaN;
  if (!(value >= 1)) throw new InputError('expected a rate such as 500KB/s, 2MB/s, 8Mbit/s, or 0 for no cap');
  return value;
}
