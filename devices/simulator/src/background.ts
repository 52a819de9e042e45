import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

/** The line the simulator prints once every device is registered and connected. */
export const READY_LINE = /simulated devices connected/;

/**
 * Runs this same command again without `--background`, detached, its output going to `logFile`, and
 * returns once it printed {@link READY_LINE} (every device registered and connected) with its pid; so
 * a script can start devices and go on with the next command knowing they are there. Fails with the
 * log's last lines when the simulator exits first.
 */
export async function runInBackground(args: string[], logFile: string): Promise<number> {
  const log = openSync(logFile, 'w');
  const child = spawn(process.execPath, [process.argv[1]!, ...args], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  let exited = null as number | null; // set by the exit listener
  child.once('exit', (code) => (exited = code ?? 1));
  for (;;) {
    const text = readFileSync(logFile, 'utf8');
    if (READY_LINE.test(text)) break;
    if (exited !== null) throw new Error(`the simulator exited (${exited}):\n${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.unref();
  return child.pid!;
}
