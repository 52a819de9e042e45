import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Command } from 'commander';

import { registerDeltaCommands } from './commands/delta.command';
import { registerFleetCommands } from './commands/fleet.command';
import { registerDeviceCommands } from './commands/device.command';
import { registerEnvCommands } from './commands/env.command';
import { registerReleaseCommands } from './commands/release.command';
import { registerRolloutCommands } from './commands/rollout.command';
import { registerLoginCommands } from './commands/login.command';
import { registerKeysCommands } from './commands/keys.command';
import { registerAuditCommands } from './commands/audit.command';
import { registerUpdatePolicyCommands } from './commands/update-policy.command';
import { EXIT_CODES_HELP } from './support/exit-codes';

/** Every command group registers itself on the program from its own file. */
const commandGroups: ((program: Command) => void)[] = [
  registerLoginCommands,
  registerFleetCommands,
  registerDeviceCommands,
  registerEnvCommands,
  registerReleaseCommands,
  registerRolloutCommands,
  registerUpdatePolicyCommands,
  registerDeltaCommands,
  registerKeysCommands,
  registerAuditCommands,
];

/** The CLI package's version (package.json sits beside dist/ in the repository and in a package). */
function version(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string })
    .version;
}

/** The `ferry` program with every command group registered. */
export function createProgram(): Command {
  const program = new Command('ferry')
    .description("Ferry: the operator's command line for fleet updates")
    .version(version(), '-V, --version', "print ferry's version")
    .showHelpAfterError()
    // Options belong to the command they follow, so `ferry device UUID --json` and
    // `ferry device tag UUID k=v` each see their own options.
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `${EXIT_CODES_HELP}\n\nEnvironment: FERRY_URL, FERRY_TOKEN (override the saved login), FERRY_CONFIG (config file).\nEvery listing and show command takes --json. Docs: docs/cli.md`,
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
