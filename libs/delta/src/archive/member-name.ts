import { posix } from 'node:path';

/**
 * Normalises a tar member name and refuses names that could escape the extraction root:
 * absolute paths, `..` components, NUL bytes. Returns the name without a leading `./`.
 * Returns null when the name is unsafe.
 */
export function safeMemberName(name: string): string | null {
  if (name.length === 0 || name.includes('\0') || name.startsWith('/') || name.includes('\\')) return null;
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.some((part) => part === '..')) return null;
  return parts.join('/');
}

/**
 * Resolves a symlink target relative to the directory of the link, inside the archive root.
 * Returns null when the target is absolute or climbs out of the root.
 */
export function resolveLinkInside(linkName: string, target: string): string | null {
  if (target.startsWith('/') || target.includes('\0')) return null;
  const joined = posix.normalize(posix.join(posix.dirname(linkName), target));
  if (joined === '..' || joined.startsWith('../') || joined.startsWith('/')) return null;
  return joined === '.' ? '' : joined;
}
