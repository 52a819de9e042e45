import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxBaseImage, run } from './image-fixtures';

/**
 * Release archives for the agent tests, made by real tools as in image-fixtures.ts (busybox-static
 * root filesystem, umoci, skopeo): layer 1 busybox, layer 2 `/app` with a 1.5 MB incompressible
 * `data.bin` that changes a little from version to version (so a delta is tiny and the gzip layer
 * is not), and `run.sh`, which sleeps, or exits 1 in a "broken" version.
 */
export interface AgentImages {
  dir: string;
  /** docker-archive per version name, tagged `app:{name}`. */
  archive: (name: string) => string;
}

export interface AppVersion {
  name: string;
  /** Edits (offset → text) applied to the shared data.bin. */
  edits: number;
  /** run.sh exits 1 at once: the container dies, the health check fails. */
  broken?: boolean;
  /**
   * Built on top of this earlier version's image (its layers kept, one layer added with VERSION, run.sh
   * and `extra.bin`, that many incompressible bytes) instead of on the base.
   */
  from?: { name: string; extraBytes: number };
}

/** Pseudo-random bytes from a seed (xorshift), incompressible for gzip. */
export function noise(seed: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

export function buildAgentImages(dir: string, versions: AppVersion[], dataSize = 1_500_000): AgentImages {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const layout = busyboxBaseImage(dir, ['sh', 'sleep', 'echo', 'cat', 'true', 'false']);
  const data = noise(42, dataSize);
  for (const version of versions) {
    const bundle = join(dir, `bundle-${version.name}`);
    const from = version.from?.name ?? 'base';
    run('umoci', ['unpack', '--rootless', '--image', `${layout}:${from}`, bundle], dir);
    const app = join(bundle, 'rootfs', 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'VERSION'), `${version.name}\n`);
    const script = version.broken
      ? `#!/bin/sh\necho "app ${version.name} is broken"\nexit 1\n`
      : `#!/bin/sh\necho "app ${version.name}"\nexec sleep 3600\n`;
    writeFileSync(join(app, 'run.sh'), script, { mode: 0o755 });
    if (version.from) writeFileSync(join(app, 'extra.bin'), noise(7, version.from.extraBytes));
    else {
      const changed = Buffer.from(data);
      for (let i = 0; i < version.edits; i++)
        changed.write(`edit ${version.name} ${i}`, (i * 97_531 + 1000) % (dataSize - 64));
      writeFileSync(join(app, 'data.bin'), changed);
    }
    run('umoci', ['repack', '--image', `${layout}:${version.name}`, bundle], dir);
    run('umoci', ['config', '--image', `${layout}:${version.name}`, '--config.cmd', '/app/run.sh'], dir);
    run(
      'skopeo',
      [
        'copy',
        '-q',
        `oci:${layout}:${version.name}`,
        `docker-archive:${join(dir, `app-${version.name}.docker.tar`)}:app:${version.name}`,
      ],
      dir,
    );
    rmSync(bundle, { recursive: true, force: true });
  }
  return { dir, archive: (name) => join(dir, `app-${name}.docker.tar`) };
}
