import { Command } from 'commander';

import { registerDeltaCommands } from './commands/delta.command';

/** Every command group registers itself on the program from its own file. */
const commandGroups: ((program: Command) => void)[] = [registerDeltaCommands];

/** The `ferry` program with every command group registered. */
export function createProgram(): Command {
  const program = new Command('ferry')
    .description("Ferry: the operator's command line for fleet updates")
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 usage or input error, 2 verification failure (corrupt delta, wrong base, digest mismatch).',
    );
  for (const register of commandGroups) register(program);
  return program;
}

createProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`ferry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
