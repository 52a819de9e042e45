import type { Release, RolloutPlan, RolloutState, RolloutView } from '@ferry/protocol';
import { Command, Option } from 'commander';

import { action, optionParser } from '../support/action';
import { fleetPath, fleetSlug, rolloutPath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { confirm } from '../support/confirm';
import { InputError } from '../support/errors';
import { ExitCode } from '../support/exit-codes';
import { print, printJson, time } from '../support/format';
import { parseBatches, parseDuration, parsePercent, parseTagFilter } from '../support/parse';
import { planText, rolloutLine, rolloutsTable, rolloutText } from './rollout-view';
import { LiveBlock, watchRollout } from './rollout-watch';

interface StartOptions {
  batches?: (number | string)[];
  bake?: number;
  maxFailures?: number;
  onFailure?: 'pause' | 'abort';
  rollback?: 'none' | 'failed' | 'batch' | false;
  deviceTimeout?: number;
  tag?: { name: string; value?: string };
  yes?: boolean;
  dryRun?: boolean;
  watch?: boolean;
  json?: boolean;
}

/** A release id, or `v3` / `3`: that version of the fleet. */
async function resolveRelease(client: FerryClient, fleet: string, given: string): Promise<string> {
  const version = /^v?(\d+)$/i.exec(given)?.[1];
  if (!version) return given;
  const releases = await client.get<Release[]>(`${fleetPath(fleet)}/releases`);
  const found = releases.find((r) => r.version === Number(version));
  if (!found) throw new InputError(`fleet ${fleet} has no release v${version} (ferry releases ${fleet})`);
  return found.id;
}

/** The exit code a watched rollout ends with: 0 when it completed, 6 when it paused or aborted. */
function watchExit(state: RolloutState): void {
  if (state !== 'completed') process.exitCode = ExitCode.RolloutNotCompleted;
}

/**
 * Follows a rollout, drawing its status in place on a terminal; in a pipe, one line per change and the
 * full status at the end; with --json, one JSON view per line (NDJSON).
 */
async function follow(client: FerryClient, id: string, json: boolean | undefined): Promise<RolloutView> {
  const first = await client.get<RolloutView>(rolloutPath(id));
  const fleet = await fleetSlug(client, first.fleetId);
  // Redrawn in place only when both outputs are a terminal (like the progress bars, never in logs).
  const live = !json && process.stdout.isTTY && process.stderr.isTTY ? new LiveBlock(process.stdout) : null;
  let last = '';
  const view = await watchRollout(client, id, (v) => {
    if (json) {
      const line = JSON.stringify(v);
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
    } else if (live) {
      live.draw(rolloutText(v, fleet));
    } else {
      const line = rolloutLine(v);
      if (line !== last) print(`${time(new Date().toISOString())}  ${line}`);
      last = line;
    }
  });
  if (!json && !live) print(`\n${rolloutText(view, fleet)}`);
  if (view.state === 'paused' && !json) {
    process.stderr.write(`rollout paused: ferry rollout resume ${view.id}  (or abort)\n`);
  }
  return view;
}

/** Registers `ferry rollout start|status|pause|resume|abort` and `ferry rollouts`. */
export function registerRolloutCommands(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('start a staged rollout of a release, follow it, pause, resume or abort it');

  rollout
    .command('start')
    .description('plan a rollout (devices, batches, projected bytes), confirm, and start it')
    .argument('<fleet>', 'fleet slug or id')
    .argument('<release>', 'release id, or a version of the fleet (v3 or 3)')
    .option(
      '--batches <list>',
      'cumulative batch ends, counts or percentages (default 1,10%,50%,100%)',
      optionParser(parseBatches),
    )
    .option(
      '--bake <duration>',
      'time a batch must stay healthy before the next starts (default 5m)',
      optionParser(parseDuration),
    )
    .option(
      '--max-failures <percent>',
      'failed share of a batch that fails it (default 20%)',
      optionParser(parsePercent),
    )
    .addOption(
      new Option('--on-failure <action>', 'what a failed batch does (default pause)').choices([
        'pause',
        'abort',
      ]),
    )
    .addOption(
      new Option(
        '--rollback [mode]',
        'send devices back to their release: failed (the default) or batch (the whole batch when it fails)',
      )
        .choices(['none', 'failed', 'batch'])
        .preset('failed'),
    )
    .option('--no-rollback', 'leave failed devices where they are')
    .option(
      '--device-timeout <duration>',
      'a device not running the release in this time has timed out (default 30m)',
      optionParser(parseDuration),
    )
    .option('--tag <key[=value]>', 'only devices with this tag', optionParser(parseTagFilter))
    .option('-y, --yes', 'start without asking (needed when stdin is not a terminal)')
    .option('--dry-run', 'print the plan and stop')
    .option('-w, --watch', 'follow the rollout once started (see rollout status --watch)')
    .option('--json', 'print the plan (dry run) or the started rollout as JSON')
    .action(
      action(async ({ connect }, fleet: string, given: string, opts: StartOptions) => {
        const client = await connect();
        const releaseId = await resolveRelease(client, fleet, given);
        const strategy = {
          ...(opts.batches ? { batches: opts.batches } : {}),
          ...(opts.bake !== undefined ? { bakeSeconds: opts.bake } : {}),
          ...(opts.maxFailures !== undefined ? { maxFailurePercent: opts.maxFailures } : {}),
          ...(opts.onFailure ? { onFailure: opts.onFailure } : {}),
          ...(opts.rollback !== undefined
            ? { rollback: opts.rollback === false ? 'none' : opts.rollback }
            : {}),
          ...(opts.deviceTimeout !== undefined ? { deviceTimeoutSeconds: opts.deviceTimeout } : {}),
        };
        const body = { releaseId, strategy, ...(opts.tag ? { tagFilter: opts.tag } : {}) };
        const { plan } = await client.post<{ plan: RolloutPlan }>(`${fleetPath(fleet)}/rollouts`, {
          ...body,
          dryRun: true,
        });
        const slug = await fleetSlug(client, plan.fleetId);
        if (opts.dryRun) return opts.json ? printJson(plan) : print(planText(plan, slug));
        if (!opts.json) print(planText(plan, slug));
        if (plan.devices.length === 0) {
          // The server would record an empty, completed rollout; there is nothing to start or watch.
          if (opts.json) printJson({ started: false, plan });
          else print(`nothing to start: no device needs release v${plan.releaseVersion}`);
          return;
        }
        await confirm(
          `start this rollout of v${plan.releaseVersion} to ${plan.devices.length} devices?`,
          opts.yes,
        );
        const started = await client.post<RolloutView & { plan: RolloutPlan }>(
          `${fleetPath(fleet)}/rollouts`,
          body,
        );
        if (opts.json && !opts.watch) return printJson(started);
        if (!opts.json)
          print(
            `started rollout ${started.id} (${started.state}); follow it: ferry rollout status ${started.id} --watch`,
          );
        if (opts.watch) watchExit((await follow(client, started.id, opts.json)).state);
      }),
    );

  rollout
    .command('status')
    .description('show a rollout: state, batches with progress, counts by device state, bytes, failures')
    .argument('<id>', 'rollout id')
    .option('-w, --watch', 'follow it live until it completes (exit 0), or pauses or aborts (exit 6)')
    .option('--json', 'print as JSON (with --watch: one JSON object per line as it changes)')
    .action(
      action(async ({ connect }, id: string, opts: { watch?: boolean; json?: boolean }) => {
        const client = await connect();
        if (opts.watch) return watchExit((await follow(client, id, opts.json)).state);
        const view = await client.get<RolloutView>(rolloutPath(id));
        if (opts.json) return printJson(view);
        print(rolloutText(view, await fleetSlug(client, view.fleetId)));
      }),
    );

  for (const [verb, what] of [
    ['pause', 'stop starting batches (devices already told carry on and are still judged)'],
    ['resume', 'carry on (after a failed batch, with the next batch)'],
    ['abort', 'end the rollout: batches and devices not yet started are canceled'],
  ] as const) {
    rollout
      .command(verb)
      .description(what)
      .argument('<id>', 'rollout id')
      .option('--json', 'print the rollout as JSON')
      .action(
        action(async ({ connect }, id: string, opts: { json?: boolean }) => {
          const view = await (await connect()).post<RolloutView>(`${rolloutPath(id)}/${verb}`);
          if (opts.json) return printJson(view);
          print(`rollout ${view.id}: ${view.state}${view.reason ? ` — ${view.reason}` : ''}`);
        }),
      );
  }

  program
    .command('rollouts')
    .description("list a fleet's rollouts, newest first")
    .argument('<fleet>', 'fleet slug or id')
    .addOption(
      new Option('--state <state>', 'only rollouts in this state').choices([
        'running',
        'paused',
        'completed',
        'aborted',
      ]),
    )
    .option('--json', 'print as JSON')
    .action(
      action(async ({ connect }, fleet: string, opts: { state?: RolloutState; json?: boolean }) => {
        const views = await (
          await connect()
        ).get<RolloutView[]>(`${fleetPath(fleet)}/rollouts`, { state: opts.state });
        if (opts.json) return printJson(views);
        if (views.length === 0)
          return print(`fleet ${fleet} has no rollouts: ferry rollout start ${fleet} RELEASE`);
        print(rolloutsTable(views));
      }),
    );
}
