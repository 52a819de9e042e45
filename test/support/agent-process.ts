import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import nodeFlags from '../../devices/agent/node-flags.json';

export const AGENT_BUNDLE = join(__dirname, '..', '..', 'devices', 'agent', 'dist', 'ferry-agent.js');

/** Bundles the agent (esbuild, a second or so) so the tests run exactly what ships. */
export function buildAgentBundle(): string {
  execFileSync(process.execPath, [join(__dirname, '..', '..', 'devices', 'agent', 'build.mjs')], {
    stdio: 'inherit',
  });
  return AGENT_BUNDLE;
}

/** The bundled agent as a child process, as a device would run it. */
export interface AgentProcess {
  child: ChildProcess;
  output: () => string;
  /** Log lines (JSON) the agent wrote. */
  lines: () => Record<string, unknown>[];
  waitFor: (
    what: string,
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ) => Promise<Record<string, unknown>>;
  kill: () => Promise<void>;
  stop: () => Promise<void>;
  exited: Promise<number | null>;
}

/** How the agent ships (unit file, Dockerfile, the bundle's shebang): devices/agent/node-flags.json. */
export const AGENT_NODE_FLAGS: string[] = nodeFlags;

export function startAgent(
  env: Record<string, string>,
  command = process.execPath,
  prefixArgs: string[] = AGENT_NODE_FLAGS,
): AgentProcess {
  const child = spawn(command, [...prefixArgs, AGENT_BUNDLE], {
    env: {
      PATH: process.env.PATH ?? '',
      FERRY_LOG_LEVEL: 'debug',
      // Node flags for the agent under test (e.g. heap limits), as a device's unit file would pass.
      ...(process.env.FERRY_AGENT_NODE_OPTIONS ? { NODE_OPTIONS: process.env.FERRY_AGENT_NODE_OPTIONS } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = (): Record<string, unknown>[] =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(sig);
    await exited;
  };
  return {
    child,
    output: () => output,
    lines,
    exited,
    waitFor: async (what, match, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines().find(match);
        if (found) return found;
        if (child.exitCode !== null)
          throw new Error(`agent exited (${child.exitCode}) before ${what}:\n${output.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${output.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}

/** The agent's persisted state in its data directory. */
export function agentState(dataDir: string): {
  credentials: { uuid: string; apiKey: string; signingPublicKey: string; targetKey?: string | null } | null;
  journal: {
    highest?: { targetVersion: number; releaseVersion: number };
    current: { releaseId: string } | null;
    previous: { releaseId: string } | null;
    rejected: { releaseId: string; status: string; reason: string } | null;
    update: {
      phase: string;
      fallbacks: Record<string, string>;
      layers: { diffId: string; download: unknown }[];
    } | null;
  } | null;
  ledger: {
    totalFetched: number;
    blobs: Record<string, { done: number; fetched: number; complete: boolean }>;
  } | null;
} {
  const read = <T>(name: string): T | null =>
    existsSync(join(dataDir, name)) ? (JSON.parse(readFileSync(join(dataDir, name), 'utf8')) as T) : null;
  return {
    credentials: read('credentials.json'),
    journal: read('journal.json'),
    ledger: read('download-ledger.json'),
  };
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
