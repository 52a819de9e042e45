import type { AuditEntry } from '@ferry/protocol';
import { Command } from 'commander';

import { action } from '../support/action';
import { print, printJson, table, time } from '../support/format';
import { parseDuration } from '../support/parse';

/** `--since 2h` (ago) or an ISO time → ISO time. */
function sinceOf(text: string, now = Date.now()): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) return new Date(Date.parse(text)).toISOString();
  return new Date(now - parseDuration(text) * 1000).toISOString();
}

function targetsText(entry: AuditEntry): string {
  return Object.entries(entry.targets)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** Registers `ferry audit`. */
export function registerAuditCommands(program: Command): void {
  program
    .command('audit')
    .description('the audit log: who did what, when, from where, and how it ended (oldest first)')
    .option('--fleet <fleet>', "one fleet's entries (slug or id)")
    .option('--since <when>', 'entries from this time on: a duration ago (2h, 7d) or an ISO time')
    .option('--actor <name>', "one key's entries (its name; bootstrap for the bootstrap token)")
    .option('--limit <n>', 'at most this many entries', '500')
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          opts: { fleet?: string; since?: string; actor?: string; limit: string; json?: boolean },
        ) => {
          const entries = await (
            await connect()
          ).get<AuditEntry[]>('/v1/audit', {
            fleet: opts.fleet,
            since: opts.since ? sinceOf(opts.since) : undefined,
            actor: opts.actor,
            limit: opts.limit,
          });
          if (opts.json) return printJson(entries);
          if (entries.length === 0) return print('no audit entries match');
          print(
            table(
              ['TIME', 'ACTOR', 'ACTION', 'TARGETS', 'FROM', 'OUTCOME'],
              entries.map((e) => [
                time(e.at),
                e.actor,
                e.action,
                targetsText(e) || '-',
                e.source,
                e.outcome === 'ok'
                  ? `ok ${e.status}`
                  : `${e.outcome} ${e.status}${e.error ? `: ${e.error}` : ''}`,
              ]),
            ),
          );
        },
      ),
    );
}
