import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { sha256File } from '@ferry/storage/files';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { pack } from 'tar-stream';

export const run = promisify(execFile);

/** One member of a test layer. */
export interface FixtureMember {
  name: string;
  data?: Buffer | string;
  type?: 'file' | 'directory' | 'link' | 'symlink';
  linkname?: string;
  mode?: number;
  mtime?: Date;
}

const EPOCH = new Date('2024-01-01T00:00:00Z');

/** Writes a tar layer with tar-stream (ustar, PAX for long names), deterministic mtimes. */
export async function writeTar(file: string, members: FixtureMember[]): Promise<void> {
  const p = pack();
  const done = pipeline(p, createWriteStream(file));
  for (const m of members) {
    const data = typeof m.data === 'string' ? Buffer.from(m.data) : m.data;
    p.entry(
      {
        name: m.name,
        type: m.type ?? 'file',
        linkname: m.linkname,
        mode: m.mode ?? (m.type === 'directory' ? 0o755 : 0o644),
        mtime: m.mtime ?? EPOCH,
        size: data?.length ?? 0,
        uid: 0,
        gid: 0,
      },
      data ?? Buffer.alloc(0),
    );
  }
  p.finalize();
  await done;
}

/** A fresh scratch folder; remove it with `rm(dir, { recursive: true })`. */
export function scratchDir(prefix = 'ferry-delta-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** The bare hex SHA-256 of a file, the form delta headers carry (the storage helper prefixes `sha256:`). */
export async function sha256Hex(file: string): Promise<string> {
  return (await sha256File(file)).slice('sha256:'.length);
}

/** Deterministic pseudo-random bytes (xorshift), incompressible like real binaries. */
export function noise(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Text-like bytes: words from a small vocabulary, so files compress and diff like source code. */
export function prose(length: number, seed = 1): Buffer {
  const words = [
    'const',
    'function',
    'return',
    'export',
    'module',
    'value',
    'index',
    'require',
    '{',
    '}',
    ';',
    '\n',
  ];
  const bytes = noise(length, seed);
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const word = words[bytes[i % bytes.length]! % words.length]!;
    parts.push(word);
    size += word.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, length);
}
