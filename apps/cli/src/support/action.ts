import { Command, InvalidArgumentError } from 'commander';

import { readCliEnv, type CliEnv } from './cli-env';
import { FerryClient } from './client';
import { requireCredentials } from './config-file';
import { CliError, InputError } from './errors';
import { ExitCode } from './exit-codes';

/** `ferry fleet key revoke`, from the command that runs. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** What every action gets: the environment and a way to reach the logged-in server. */
export interface ActionContext {
  env: CliEnv;
  /** The server with the saved or `FERRY_*` credentials; fails with exit 5 when there are none. */
  connect: () => Promise<FerryClient>;
}

export function createContext(env: CliEnv = readCliEnv()): ActionContext {
  return {
    env,
    connect: async () => {
      const credentials = await requireCredentials(env);
      return new FerryClient(credentials.url, credentials.token);
    },
  };
}

/**
 * Wraps a command action: a thrown error becomes one line on stderr (`ferry push: …`) and its
 * documented exit code; anything unexpected exits 1 with its name so a bug report can quote it.
 */
export function action<A extends unknown[]>(
  fn: (context: ActionContext, ...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const command = args[args.length - 1];
    const name = command instanceof Command ? commandPath(command) : 'ferry';
    try {
      await fn(createContext(), ...args);
    } catch (err) {
      if (err instanceof CliError) {
        process.stderr.write(`${name}: ${err.message}\n`);
        process.exitCode = err.exitCode;
      } else {
        const kind = err instanceof Error ? err.name : 'Error';
        process.stderr.write(`${name}: ${kind}: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exitCode = ExitCode.Usage;
      }
    }
  };
}

/** Parses `key=value`; the value may contain `=` and be empty. */
export function keyValue(text: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new InputError(`expected key=value, got "${text}"`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/** Collects a repeatable option into an array. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adapts a parser that throws {@link InputError} to commander, which then names the option in its message. */
export function optionParser<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      if (err instanceof InputError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}
