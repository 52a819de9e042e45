import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { InputError } from '../support/errors';

/** Names of the compose file in a release directory, in the order Docker Compose looks for them. */
const COMPOSE_NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
const ARCHIVE_NAME = /\.(tar|tar\.gz|tgz|oci|oci\.tar)$/i;
const MAX_COMPOSE_BYTES = 256 * 1024;

export interface BundleParts {
  compose: string;
  archives: string[];
}

/** A release directory: its compose file and every image archive (`*.tar`, `*.tar.gz`, `*.tgz`) in it. */
export async function releaseDirectory(dir: string): Promise<BundleParts> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read ${dir}: ${err.code ?? err.message}`);
  });
  const compose = COMPOSE_NAMES.find((n) => names.includes(n));
  if (!compose)
    throw new InputError(
      `${dir} is a folder without a compose file (${COMPOSE_NAMES.join(', ')}): push a docker save or OCI archive, or a folder holding a compose file and its archives`,
    );
  const archives = names.filter((n) => ARCHIVE_NAME.test(n)).sort();
  if (archives.length === 0)
    throw new InputError(`${dir} has no image archive (docker save or OCI: *.tar, *.tar.gz, *.tgz)`);
  return { compose: join(dir, compose), archives: archives.map((n) => join(dir, n)) };
}

const blocks = (size: number): number => 512 + Math.ceil(size / 512) * 512;

/**
 * The release bundle the server reads (docs/compose.md): a tar of `docker-compose.yml` and the
 * archives, streamed from disk. Its exact size is known up front (tar headers and padding are fixed),
 * so the upload shows a progress bar and sends a Content-Length.
 */
export async function openBundle(parts: BundleParts): Promise<{ stream: Readable; size: number }> {
  const compose = await readFile(parts.compose).catch((err: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read ${parts.compose}: ${err.code ?? err.message}`);
  });
  if (compose.length > MAX_COMPOSE_BYTES)
    throw new InputError(`${parts.compose} is larger than ${MAX_COMPOSE_BYTES} bytes`);
  const files: { name: string; path: string; size: number }[] = [];
  for (const [i, path] of parts.archives.entries()) {
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new InputError(`cannot read ${path}: ${err.code ?? err.message}`);
    });
    if (!info.isFile()) throw new InputError(`${path} is not a file (expected a docker save or OCI archive)`);
    // Short, unique member names: tar-stream would add a PAX header for long ones (the size counts on it).
    files.push({ name: `${i}-${basename(path).slice(-80)}`, path, size: info.size });
  }
  const size = blocks(compose.length) + files.reduce((sum, f) => sum + blocks(f.size), 0) + 1024;
  const tar = pack();
  const out = new PassThrough();
  void (async () => {
    tar.entry({ name: 'docker-compose.yml', size: compose.length, mode: 0o644, mtime: new Date(0) }, compose);
    for (const file of files) {
      const entry = tar.entry({ name: file.name, size: file.size, mode: 0o644, mtime: new Date(0) });
      await pipeline(createReadStream(file.path), entry);
    }
    tar.finalize();
  })().catch((error: Error) => tar.destroy(error));
  pipeline(tar, out).catch((error: Error) => out.destroy(error));
  return { stream: out, size };
}
