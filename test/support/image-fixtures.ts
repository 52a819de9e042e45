import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * Release archives made by real tools: a busybox-static root filesystem packed into OCI images by
 * `umoci`, then written as docker-archive and oci-archive by `skopeo copy` (Debian packages
 * busybox-static, umoci, skopeo). Takes about a second.
 */
export interface ImageFixtures {
  dir: string;
  /** app:1 — layer 1 busybox, layer 2 /app files (v1). */
  v1Docker: string;
  v1Oci: string;
  /** app:2 — the same layer 1, a changed layer 2. */
  v2Docker: string;
  v2Oci: string;
  /** Two images (web, worker) in one OCI archive, packed with GNU tar. */
  multiOci: string;
}

export function run(command: string, args: string[], cwd: string): void {
  execFileSync(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function appLayer(bundle: string, version: string): void {
  const app = join(bundle, 'rootfs', 'app');
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, 'VERSION'), `${version}\n`);
  writeFileSync(join(app, 'run.sh'), `#!/bin/sh\necho "app ${version}"\nexec sleep 3600\n`, { mode: 0o755 });
  writeFileSync(join(app, 'data.txt'), `payload for ${version}\n`.repeat(200));
}

/**
 * An OCI layout in `dir/oci` whose `base` image is one layer: busybox-static at /bin/busybox with
 * the given applet links. Returns the layout's path.
 */
export function busyboxBaseImage(dir: string, links: string[]): string {
  const layout = join(dir, 'oci');
  run('umoci', ['init', '--layout', layout], dir);
  run('umoci', ['new', '--image', `${layout}:base`], dir);
  const base = join(dir, 'bundle-base');
  run('umoci', ['unpack', '--rootless', '--image', `${layout}:base`, base], dir);
  mkdirSync(join(base, 'rootfs', 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(base, 'rootfs', 'bin', 'busybox'));
  for (const link of links) symlinkSync('busybox', join(base, 'rootfs', 'bin', link));
  run('umoci', ['repack', '--image', `${layout}:base`, base], dir);
  return layout;
}

export function buildImageFixtures(dir: string): ImageFixtures {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const layout = busyboxBaseImage(dir, ['sh', 'sleep']);

  const versions = ['1', '2'] as const;
  for (const version of versions) {
    const bundle = join(dir, `bundle-v${version}`);
    run('umoci', ['unpack', '--rootless', '--image', `${layout}:base`, bundle], dir);
    appLayer(bundle, version);
    run('umoci', ['repack', '--image', `${layout}:v${version}`, bundle], dir);
    run('umoci', ['config', '--image', `${layout}:v${version}`, '--config.cmd', '/app/run.sh'], dir);
    run(
      'skopeo',
      [
        'copy',
        '-q',
        `oci:${layout}:v${version}`,
        `docker-archive:${join(dir, `app-v${version}.docker.tar`)}:app:${version}`,
      ],
      dir,
    );
    run(
      'skopeo',
      [
        'copy',
        '-q',
        `oci:${layout}:v${version}`,
        `oci-archive:${join(dir, `app-v${version}.oci.tar`)}:app:${version}`,
      ],
      dir,
    );
  }

  const multi = join(dir, 'multi');
  run('umoci', ['init', '--layout', multi], dir);
  for (const service of ['web', 'worker']) {
    run('skopeo', ['copy', '-q', `oci:${layout}:v1`, `oci:${multi}:${service}`], dir);
  }
  run('tar', ['-C', multi, '-cf', join(dir, 'multi.oci.tar'), '.'], dir);

  return {
    dir,
    v1Docker: join(dir, 'app-v1.docker.tar'),
    v1Oci: join(dir, 'app-v1.oci.tar'),
    v2Docker: join(dir, 'app-v2.docker.tar'),
    v2Oci: join(dir, 'app-v2.oci.tar'),
    multiOci: join(dir, 'multi.oci.tar'),
  };
}

/**
 * The docker-archive at `source` with every layer member gzip'd by gzip(1), under the same names
 * (docker load accepts gzip'd layer.tar members; skopeo and dockerd 20.10 write them uncompressed).
 * `corrupt` may change a gzip'd layer (by its position in manifest.json) before it is packed.
 */
export function gzipLayersOf(
  source: string,
  out: string,
  corrupt?: { layer: number; edit: (gz: Buffer) => Buffer },
): { layers: string[] } {
  const dir = `${out}.d`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  run('tar', ['-xf', source, '-C', dir], dir);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
  const layers = manifest.flatMap((image) => image.Layers);
  for (const [index, name] of [...new Set(layers)].entries()) {
    const path = realpathSync(join(dir, name));
    run('gzip', ['-n', '-9', path], dir);
    let gz: Buffer = readFileSync(`${path}.gz`);
    if (corrupt?.layer === index) gz = corrupt.edit(gz);
    writeFileSync(path, gz);
    rmSync(`${path}.gz`);
  }
  run('tar', ['-C', dir, '-cf', out, '.'], dir);
  rmSync(dir, { recursive: true, force: true });
  return { layers };
}

/**
 * Two versions of an image whose layers `umoci insert` (Debian's umoci 0.4.7) wrote: tars that end
 * right after the last member's data, without padding or end-of-archive blocks. dockerd 20.10 loads
 * them. Returns the OCI layout and both versions as docker-archive and oci-archive (skopeo).
 */
export function umociInsertImages(dir: string): {
  layout: string;
  v1Docker: string;
  v2Oci: string;
} {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'files', 'bin'), { recursive: true });
  const layout = join(dir, 'oci');
  copyFileSync('/bin/busybox', join(dir, 'files', 'bin', 'busybox'));
  run('umoci', ['init', '--layout', layout], dir);
  for (const version of ['1', '2']) {
    writeFileSync(join(dir, 'files', `app-${version}.txt`), `app ${version}\n`.repeat(500 + Number(version)));
    run('umoci', ['new', '--image', `${layout}:v${version}`], dir);
    run('umoci', ['insert', '--image', `${layout}:v${version}`, join(dir, 'files', 'bin'), '/bin'], dir);
    run(
      'umoci',
      [
        'insert',
        '--image',
        `${layout}:v${version}`,
        join(dir, 'files', `app-${version}.txt`),
        '/app/data.txt',
      ],
      dir,
    );
  }
  const v1Docker = join(dir, 'v1.docker.tar');
  const v2Oci = join(dir, 'v2.oci.tar');
  run('skopeo', ['copy', '-q', `oci:${layout}:v1`, `docker-archive:${v1Docker}:app:1`], dir);
  run('skopeo', ['copy', '-q', `oci:${layout}:v2`, `oci-archive:${v2Oci}:app:2`], dir);
  return { layout, v1Docker, v2Oci };
}
