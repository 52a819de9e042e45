import { RangeNotSatisfiableError } from '@ferry/protocol';
import { ByteRange } from '@ferry/storage';

/**
 * Parses an HTTP `Range` header for a resource of `size` bytes (RFC 9110 §14.2). Returns null when
 * the whole resource should be sent: no header, a unit other than bytes, or several ranges (which a
 * server may ignore). Throws {@link RangeNotSatisfiableError} for a range that starts past the end.
 */
export function parseByteRange(header: string | undefined, size: number): ByteRange | null {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) {
    if (/^bytes=/.test(header.trim()) && !header.includes(',')) throw new RangeNotSatisfiableError(size);
    return null;
  }
  const [, first, last] = match;
  if (first === '' && last === '') throw new RangeNotSatisfiableError(size);
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw new RangeNotSatisfiableError(size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) throw new RangeNotSatisfiableError(size);
  return { start, end };
}
