import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Debian bookworm packages that make Node.js 18 run: nodejs, libnode and their libraries. */
const PACKAGES = [
  'nodejs',
  'libnode108',
  'libc6',
  'libgcc-s1',
  'libstdc++6',
  'libbrotli1',
  'libc-ares2',
  'libicu72',
  'libnghttp2-14',
  'libssl3',
  'libuv1',
  'zlib1g',
  'node-acorn',
  'node-cjs-module-lexer',
  'node-undici',
];

/** Debian architecture → the qemu user-mode emulator that runs it. */
export const ARM_ARCHES = {
  arm64: { qemu: 'qemu-aarch64-static', triplet: 'aarch64-linux-gnu', loader: 'ld-linux-aarch64.so.1' },
  armhf: { qemu: 'qemu-arm-static', triplet: 'arm-linux-gnueabihf', loader: 'ld-linux-armhf.so.3' },
} as const;
export type ArmArch = keyof typeof ARM_ARCHES;

export interface ArmNode {
  qemu: string;
  sysroot: string;
  node: string;
  /** argv to run `args` with the arm64 node under qemu. */
  command: (args: string[]) => { file: string; args: string[] };
}

/**
 * Debian's arm64 (or armhf, for armv7) Node.js unpacked into a private sysroot (apt with its own state directories, then
 * `dpkg-deb -x`: nothing is installed on the host), run by `qemu-aarch64-static -L <sysroot>`
 * (`qemu-arm-static` for armhf). Cached under `dir`. Throws with apt's message when the packages
 * cannot be had here.
 */
export function prepareArmNode(arch: ArmArch = 'arm64', dir = `/tmp/ferry-${arch}-node`): ArmNode {
  const sysroot = join(dir, 'sysroot');
  const node = join(sysroot, 'usr', 'bin', 'node');
  const { qemu, triplet, loader } = ARM_ARCHES[arch];
  execFileSync('sh', ['-c', `command -v ${qemu}`], { stdio: 'ignore' });
  if (!existsSync(node)) {
    rmSync(dir, { recursive: true, force: true });
    for (const sub of ['lists/partial', 'cache/archives/partial', 'debs'])
      mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, 'status'), '');
    const apt = [
      '-o',
      `Dir::State::Lists=${join(dir, 'lists')}`,
      '-o',
      `Dir::Cache=${join(dir, 'cache')}`,
      '-o',
      `Dir::State::status=${join(dir, 'status')}`,
      '-o',
      `APT::Architectures::=${arch}`,
      '-o',
      `APT::Architecture=${arch}`,
      '-o',
      'APT::Sandbox::User=root',
    ];
    try {
      execFileSync('apt-get', [...apt, '-qq', 'update'], { stdio: 'pipe' });
    } catch {
      // One index out of sync (e.g. a security mirror mid-sync) still leaves the main archive usable.
    }
    execFileSync('apt-get', [...apt, '-qq', 'download', ...PACKAGES], {
      cwd: join(dir, 'debs'),
      stdio: 'pipe',
    });
    mkdirSync(sysroot, { recursive: true });
    for (const deb of readdirSync(join(dir, 'debs')).filter((f) => f.endsWith('.deb')))
      execFileSync('dpkg-deb', ['-x', join(dir, 'debs', deb), sysroot]);
  }
  // The guest's loader, named explicitly with its library path: it must not consult the host's
  // ld.so.cache (armhf's loader otherwise misses libc in the sysroot).
  const libraryPath = [join(sysroot, 'lib', triplet), join(sysroot, 'usr', 'lib', triplet)].join(':');
  return {
    qemu,
    sysroot,
    node,
    command: (args) => ({
      file: qemu,
      args: [
        '-L',
        sysroot,
        join(sysroot, 'lib', triplet, loader),
        '--library-path',
        libraryPath,
        node,
        ...args,
      ],
    }),
  };
}
