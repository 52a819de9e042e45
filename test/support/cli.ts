import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const ROOT = resolve(__dirname, '../..');
const BIN = join(ROOT, 'apps/cli/bin/ferry.js');

export interface FerryRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The process's peak resident memory (VmHWM, kB) as last read from /proc, with `measureMemory`. */
  peakRssKb?: number;
}

const BUILD_LOCK = join(
  tmpdir(),
  `ferry-cli-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`,
);

/**
 * Compiles the CLI (and the libraries it references) so `apps/cli/bin/ferry.js` runs the current code.
 * Suites run in parallel workers: a lock folder makes them build one at a time instead of writing the
 * same outputs at once (a lock older than two minutes is from a killed run and is taken over).
 */
export async function buildCli(): Promise<void> {
  for (;;) {
    try {
      await mkdir(BUILD_LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (await stat(BUILD_LOCK).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 120_000) await rm(BUILD_LOCK, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    await promisify(execFile)('npx', ['tsc', '-b', 'apps/cli/tsconfig.json'], { cwd: ROOT });
  } finally {
    await rm(BUILD_LOCK, { recursive: true, force: true });
  }
}

/**
 * Runs the built `ferry` binary as a subprocess, asynchronously (the server under test runs in this
 * process). `env` is added to a copy of this process's environment without any `FERRY_*` variables;
 * `stdin` is piped in when given, else stdin is empty (not a terminal).
 */
export function ferry(
  args: string[],
  options: {
    env?: Record<string, string>;
    stdin?: Readable;
    timeoutMs?: number;
    measureMemory?: boolean;
  } = {},
): Promise<FerryRun> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('FERRY_')),
  );
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    let peakRssKb: number | undefined;
    const sampler = options.measureMemory
      ? setInterval(() => {
          try {
            const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
            if (hwm) peakRssKb = Number(hwm);
          } catch {
            // the process has just exited
          }
        }, 25)
      : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolvePromise({ code: code ?? (signal ? 128 : -1), stdout, stderr, peakRssKb });
    });
    child.stdin.on('error', () => undefined); // the CLI may exit before reading all of stdin
    if (options.stdin) options.stdin.pipe(child.stdin);
    else child.stdin.end();
  });
}

const shellQuote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`;

/**
 * Runs `ferry` on a pseudo-terminal (util-linux `script`), for what only happens at a terminal:
 * progress bars and confirmation prompts. `input` is typed in; the output is stdout and stderr as the
 * terminal showed them, with CRLF turned back into LF.
 */
export async function ferryOnTerminal(
  args: string[],
  options: {
    env?: Record<string, string>;
    answer?: { when: RegExp; text: string };
    /** A file as stdin (not a terminal) while stdout and stderr stay one. */
    stdinFile?: string;
    timeoutMs?: number;
  } = {},
): Promise<{ code: number; output: string }> {
  const command =
    [process.execPath, BIN, ...args].map(shellQuote).join(' ') +
    (options.stdinFile ? ` < ${shellQuote(options.stdinFile)}` : '');
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('FERRY_')),
  );
  return new Promise((resolvePromise, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: ROOT,
      env: { ...env, COLUMNS: '200', LINES: '50', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let answered = false;
    const collect = (chunk: string): void => {
      output += chunk;
      // Type the answer once the question is on the terminal; `script` passes it on.
      if (options.answer && !answered && options.answer.when.test(output)) {
        answered = true;
        child.stdin.write(options.answer.text);
      }
    };
    child.stdout.setEncoding('utf8').on('data', collect);
    child.stderr.setEncoding('utf8').on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolvePromise({ code: code ?? -1, output: output.replace(/\r\n/g, '\n') });
    });
    child.stdin.on('error', () => undefined);
  });
}
