import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Debian bookworm arm64 packages that make Node.js 18 run: nodejs, libnode and their libraries. */
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

export interface ArmNode {
  qemu: string;
  sysroot: string;
  node: string;
  /** argv to run `args` with the arm64 node under qemu. */
  command: (args: string[]) => { file: string; args: string[] };
}

/**
 * Debian's arm64 Node.js unpacked into a private sysroot (apt with its own state directories, then
 * `dpkg-deb -x`: nothing is installed on the host), run by `qemu-aarch64-static -L <sysroot>`.
 * Cached under `dir`. Throws with apt's message when arm64 packages cannot be had here.
 */
export function prepareArmNode(dir = '/tmp/ferry-arm-node'): ArmNode {
  const sysroot = join(dir, 'sysroot');
  const node = join(sysroot, 'usr', 'bin', 'node');
  const qemu = 'qemu-aarch64-static';
  execFileSync('sh', ['-c', `command -v ${qemu}`], { stdio: 'ignore' });
  if (!existsSync(node)) {
    rmSync(dir, { recursive: true, force: true });
    for (const sub of ['lists/partial', 'cache/archives/partial', 'debs']) mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, 'status'), '');
    const apt = [
      '-o', `Dir::State::Lists=${join(dir, 'lists')}`,
      '-o', `Dir::Cache=${join(dir, 'cache')}`,
      '-o', `Dir::State::status=${join(dir, 'status')}`,
      '-o', 'APT::Architectures::=arm64',
      '-o', 'APT::Architecture=arm64',
      '-o', 'APT::Sandbox::User=root',
    ];
    execFileSync('apt-get', [...apt, '-qq', 'update'], { stdio: 'pipe' });
    execFileSync('apt-get', [...apt, '-qq', 'download', ...PACKAGES], { cwd: join(dir, 'debs'), stdio: 'pipe' });
    mkdirSync(sysroot, { recursive: true });
    for (const deb of readdirSync(join(dir, 'debs')).filter((f) => f.endsWith('.deb')))
      execFileSync('dpkg-deb', ['-x', join(dir, 'debs', deb), sysroot]);
  }
  return { qemu, sysroot, node, command: (args) => ({ file: qemu, args: ['-L', sysroot, node, ...args] }) };
}
