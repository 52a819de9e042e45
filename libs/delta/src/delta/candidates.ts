import { posix } from 'node:path';

import type { TarEntry, TarIndex } from './tar-index';

/** A member of one of the base layers. */
export interface BaseMember {
  base: number;
  entry: TarEntry;
}

/**
 * Replaces version-like parts of a path with `#`, so `lib/foo-1.2.3/x` and `lib/foo-1.2.4/x`,
 * `libx.so.1.2` and `libx.so.1.3`, or `app.3f9a02c1.js` and `app.77e01b3d.js` compare equal.
 */
export function normaliseVersions(path: string): string {
  return path.replace(/[0-9a-f]{8,}|\d+(?:[._~+-]?\d+)*/gi, '#');
}

function extension(path: string): string {
  const base = posix.basename(path);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1) : '';
}

const isFile = (entry: TarEntry) => entry.size > 0;

/** Lookups over every member of every base layer, for the encoder to find what a target member resembles. */
export class BaseCatalog {
  private readonly byContent = new Map<string, BaseMember>();
  private readonly byHeader = new Map<string, BaseMember>();
  private readonly byPath = new Map<string, BaseMember[]>();
  private readonly byVersionless = new Map<string, BaseMember[]>();
  private readonly byName = new Map<string, BaseMember[]>();
  private readonly byVersionlessName = new Map<string, BaseMember[]>();
  private readonly byExtension = new Map<string, BaseMember[]>();

  constructor(readonly bases: TarIndex[]) {
    const add = (map: Map<string, BaseMember[]>, key: string, member: BaseMember) => {
      const list = map.get(key);
      if (list) list.push(member);
      else map.set(key, [member]);
    };
    bases.forEach((index, base) => {
      for (const entry of index.entries) {
        const member = { base, entry };
        // Later layers win: they are what the image shows at that path.
        if (entry.contentHash) this.byContent.set(entry.contentHash, member);
        this.byHeader.set(entry.headerHash, member);
        add(this.byPath, entry.path, member);
        add(this.byVersionless, normaliseVersions(entry.path), member);
        if (!isFile(entry)) continue;
        const name = posix.basename(entry.path);
        add(this.byName, name, member);
        add(this.byVersionlessName, normaliseVersions(name), member);
        add(this.byExtension, extension(entry.path), member);
      }
    });
  }

  /** A base member with exactly this content. */
  sameContent(entry: TarEntry): BaseMember | undefined {
    return entry.contentHash ? this.byContent.get(entry.contentHash) : undefined;
  }

  /** A base member with exactly these header bytes. */
  sameHeader(entry: TarEntry): BaseMember | undefined {
    return this.byHeader.get(entry.headerHash);
  }

  /**
   * The base member most likely to resemble `entry`: same path, then same path with version
   * numbers normalised, then same file name (plain, then normalised), then a file with the
   * same extension and a size within 25 %. Among several, the closest in size.
   */
  similar(entry: TarEntry, filesOnly = true): BaseMember | undefined {
    const name = posix.basename(entry.path);
    const lists = [
      this.byPath.get(entry.path),
      this.byVersionless.get(normaliseVersions(entry.path)),
      this.byName.get(name),
      this.byVersionlessName.get(normaliseVersions(name)),
    ];
    for (const list of lists) {
      const found = closest(
        list?.filter((m) => !filesOnly || isFile(m.entry)),
        entry.size,
      );
      if (found) return found;
    }
    if (!filesOnly || entry.size === 0) return undefined;
    const found = closest(this.byExtension.get(extension(entry.path)), entry.size);
    return found && Math.abs(found.entry.size - entry.size) <= entry.size / 4 ? found : undefined;
  }
}

function closest(list: BaseMember[] | undefined, size: number): BaseMember | undefined {
  let best: BaseMember | undefined;
  for (const member of list ?? []) {
    if (!best || Math.abs(member.entry.size - size) <= Math.abs(best.entry.size - size)) best = member;
  }
  return best;
}
