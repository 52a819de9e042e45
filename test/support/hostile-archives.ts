import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

/** A tar archive assembled member by member, for archives no honest tool would write. */
export interface Member {
  name: string;
  body?: Buffer | string;
  type?: 'file' | 'symlink' | 'link' | 'directory' | 'fifo';
  linkname?: string;
  /** Lie about the size in the header (tar-stream then writes a short or long member). */
  size?: number;
}

export async function tarOf(members: Member[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  for (const member of members) {
    const body = member.body === undefined ? undefined : Buffer.from(member.body);
    archive.entry(
      { name: member.name, type: member.type ?? 'file', linkname: member.linkname, size: body?.length ?? 0 },
      body ?? Buffer.alloc(0),
    );
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A layer tar made by GNU tar from the given files. */
export function gnuTarLayer(dir: string, files: Record<string, string | Buffer>): Buffer {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'root'), { recursive: true });
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, 'root', name, '..'), { recursive: true });
    writeFileSync(join(dir, 'root', name), body);
  }
  execFileSync('tar', [
    '-C',
    join(dir, 'root'),
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '-cf',
    join(dir, 'layer.tar'),
    '.',
  ]);
  return readFileSync(join(dir, 'layer.tar'));
}

/** A docker-archive built from layers, with optional lies in the config or manifest. */
export async function dockerArchive(
  layers: Buffer[],
  options: { diffIds?: string[]; repoTag?: string | null; extra?: Member[]; configName?: string } = {},
): Promise<Buffer> {
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: options.diffIds ?? layers.map((layer) => sha256(layer)) },
  });
  const configName = options.configName ?? `${sha256(config).slice(7)}.json`;
  const layerNames = layers.map((layer, i) => `${i}${sha256(layer).slice(8, 20)}/layer.tar`);
  const manifest = JSON.stringify([
    {
      Config: configName,
      RepoTags: options.repoTag === null ? null : [options.repoTag ?? 'app:1'],
      Layers: layerNames,
    },
  ]);
  return tarOf([
    ...layers.map((layer, i) => ({ name: layerNames[i] as string, body: layer })),
    { name: configName, body: config },
    { name: 'manifest.json', body: manifest },
    ...(options.extra ?? []),
  ]);
}

/** A gzip'd layer that expands to `bytes` zero bytes inside a tar: a gzip bomb. */
export async function gzipBombLayer(bytes: number): Promise<{ gz: Buffer; diffId: string }> {
  const layer = await tarOf([{ name: 'zeros', body: Buffer.alloc(bytes) }]);
  return { gz: gzipSync(layer, { level: 9 }), diffId: sha256(layer) };
}
