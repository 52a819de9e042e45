import { ChildProcess, spawn } from 'node:child_process';
import { createConnection } from 'node:net';

/**
 * A Redis server of the test's own (Debian's redis-server, nothing on disk), so a test can kill and
 * restart it without touching the machine's Redis that other suites share.
 */
export interface RedisProcess {
  url: string;
  port: number;
  kill: () => Promise<void>;
  start: () => Promise<void>;
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startRedis(port: number): Promise<RedisProcess> {
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100 && !(await answers(port)); i += 1) await new Promise((r) => setTimeout(r, 50));
  };
  const kill = async (): Promise<void> => {
    const running = child;
    // Killed by a signal, a process has a signalCode and no exitCode: it is gone all the same.
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill('SIGKILL');
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, port, kill, start };
}
