import { createInterface } from 'node:readline/promises';

import { InputError } from './errors';

/**
 * Asks a yes/no question on the terminal. Off a terminal there is nobody to ask: the caller must
 * pass `--yes`, so a script never deletes by accident.
 */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new InputError(
      `${question.replace(/\?$/, '')}: not confirmed (stdin is not a terminal; pass --yes)`,
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new InputError('cancelled');
  } finally {
    rl.close();
  }
}
