import { ChildProcess, spawn } from 'node:child_process';

/** A Node.js program started by a test, once it said it is ready. */
export interface ReadyProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output: () => string;
  /**
   * Sends `signal` (to its whole process group when started `detached`, unless `group` is false) and
   * waits for the exit.
   */
  signal: (signal: NodeJS.Signals, group?: boolean) => Promise<void>;
}

/**
 * Runs `node main` with exactly `env` and resolves once its stdout contains `ready`; rejects with its
 * output when it exits first or stays silent for `timeoutMs`.
 */
export async function spawnReady(
  main: string,
  env: NodeJS.ProcessEnv,
  ready: string,
  options: { detached?: boolean; timeoutMs?: number } = {},
): Promise<ReadyProcess> {
  const detached = options.detached ?? false;
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'], detached });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${main} did not start:\n${output}`)),
      options.timeoutMs ?? 50_000,
    );
    const check = (): void => {
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${main} exited with ${code}:\n${output}`));
    });
  });
  const signal = async (sig: NodeJS.Signals, group = detached): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      if (group) process.kill(-child.pid, sig);
      else child.kill(sig);
    } catch {
      return;
    }
    await exited;
  };
  return { child, output: () => output, signal };
}
