import {
  ROLLOUT_STRATEGY_DEFAULTS as DEFAULTS,
  HEALTH_COMPARISON_DEFAULTS as HEALTH_DEFAULTS,
  type RolloutDeviceView,
  type RolloutPlan,
  type RolloutState,
  type RolloutView,
} from '@ferry/protocol';
import { Command, InvalidArgumentError, Option } from 'commander';

import { action, optionParser } from '../support/action';
import { fleetPath, fleetSlug, rolloutPath } from '../support/api-paths';
import type { FerryClient } from '../support/client';
import { confirm } from '../support/confirm';
import { InputError, ServerRefusedError } from '../support/errors';
import { ExitCode } from '../support/exit-codes';
import { duration, print, printJson, time } from '../support/format';
import {
  parseBatches,
  parseDuration,
  parsePercent,
  parseRamp,
  parseStartAt,
  parseTagFilter,
} from '../support/parse';
import { planText, rolloutLine, rolloutsTable, rolloutText } from './rollout-view';
import { resolveRelease, resolveRollout } from '../support/resolve';
import { waitingText } from './rollout-waiting';
import { LiveBlock, watchRollout } from './rollout-watch';

interface StartOptions {
  batches?: (number | string)[];
  bake?: number;
  maxFailures?: number;
  onFailure?: 'pause' | 'abort';
  rollback?: 'none' | 'failed' | 'batch' | false;
  deviceTimeout?: number;
  waitForDeltas?: number;
  maxPerMinute?: number;
  seed?: number;
  ramp?: { base: number; factor: number; max?: number };
  startAt?: string;
  compareHealth?: boolean;
  healthMargin?: number;
  onWorse?: 'pause' | 'abort';
  healthMetrics?: string[];
  tag?: { name: string; value?: string };
  yes?: boolean;
  dryRun?: boolean;
  watch?: boolean;
  json?: boolean;
}

function positiveCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/** The exit code a watched rollout ends with: 0 when it completed, 6 when it paused or aborted. */
function watchExit(state: RolloutState): void {
  if (state !== 'completed') process.exitCode = ExitCode.RolloutNotCompleted;
}

/**
 * Follows a rollout, drawing its status in place on a terminal; in a pipe, one line per change, a line
 * saying what it waits for when nothing changed for a heartbeat (30 s), and the full status at the
 * end; with --json, one JSON view per line (NDJSON).
 */
async function follow(
  client: FerryClient,
  id: string,
  json: boolean | undefined,
  heartbeatMs: number,
): Promise<RolloutView> {
  const first = await client.get<RolloutView>(rolloutPath(id));
  const fleet = await fleetSlug(client, first.fleetId);
  // Redrawn in place only when both outputs are a terminal (like the progress bars, never in logs).
  const live = !json && process.stdout.isTTY && process.stderr.isTTY ? new LiveBlock(process.stdout) : null;
  let last = '';
  let latest = first;
  let waiting = '';
  let printedAt = Date.now();
  let finished = false;
  const draw = (): void => live?.draw(`${rolloutText(latest, fleet)}${waiting ? `\n${waiting}\n` : ''}`);
  // What the rollout waits for: on a terminal under the status (every 5 s), in a pipe as a line
  // when nothing else was printed for a heartbeat.
  const heartbeat = setInterval(
    () => {
      if (json || latest.state !== 'running' || (!live && Date.now() - printedAt < heartbeatMs - 50)) return;
      client
        .get<RolloutDeviceView[]>(`${rolloutPath(id)}/devices`)
        .then((devices) => {
          if (finished) return; // answered after the end: the final status is already out
          waiting = waitingText(latest, devices);
          if (live) return draw();
          print(`${time(new Date().toISOString())}  ${waiting}`);
          printedAt = Date.now();
        })
        .catch(() => undefined); // the next heartbeat tries again; the watch itself carries on
    },
    live ? 5000 : Math.min(heartbeatMs, 5000),
  );
  let view: RolloutView;
  try {
    view = await watchRollout(client, id, (v) => {
      latest = v;
      if (json) {
        const line = JSON.stringify(v);
        if (line !== last) process.stdout.write(`${line}\n`);
        last = line;
      } else if (live) {
        draw();
      } else {
        const line = rolloutLine(v);
        if (line !== last) {
          print(`${time(new Date().toISOString())}  ${line}`);
          printedAt = Date.now();
        }
        last = line;
      }
    });
  } finally {
    finished = true;
    clearInterval(heartbeat);
  }
  if (!json && !live) print(`\n${rolloutText(view, fleet)}`);
  if (view.state === 'paused' && !json) {
    process.stderr.write(`rollout paused: ferry rollout resume ${view.id}  (or abort)\n`);
  }
  return view;
}

/**
 * Refuses (409, exit 3) before any plan is printed when the fleet already has an active rollout,
 * saying what that rollout is doing and how to get it out of the way.
 */
async function refuseWhileActive(client: FerryClient, fleet: string): Promise<void> {
  const active = (
    await Promise.all(
      (['scheduled', 'running', 'paused'] as const).map((state) =>
        client.get<RolloutView[]>(`${fleetPath(fleet)}/rollouts`, { state }),
      ),
    )
  ).flat()[0];
  if (!active) return;
  const what =
    active.state === 'paused'
      ? `is paused${active.reason ? ` (${active.reason})` : ''}: resume it (ferry rollout resume ${active.id}) or abort it (ferry rollout abort ${active.id})`
      : active.state === 'scheduled'
        ? `is ${active.reason ?? 'scheduled'}: start it now (ferry rollout resume ${active.id}) or abort it (ferry rollout abort ${active.id})`
        : `is running: wait for it (ferry rollout status ${active.id} --watch) or abort it (ferry rollout abort ${active.id})`;
  throw new ServerRefusedError(
    `409 Conflict: rollout ${active.id} of v${active.releaseVersion} ${what}`,
    409,
    active,
  );
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
      `cumulative batch ends, counts or percentages (default ${DEFAULTS.batches.join(',')})`,
      optionParser(parseBatches),
    )
    .option(
      '--ramp <base,factor[,max]>',
      'batch sizes by exponential ramp instead of --batches: base, base×factor, … each at most max',
      optionParser(parseRamp),
    )
    .option(
      '--start-at <time>',
      'start at this time (2026-06-01T02:00:00+02:00, or +2h from now); scheduled until then',
      optionParser(parseStartAt),
    )
    .option(
      '--bake <duration>',
      `time a batch must stay healthy before the next starts (default ${duration(DEFAULTS.bakeSeconds)})`,
      optionParser(parseDuration),
    )
    .option(
      '--max-failures <percent>',
      `failed share of a batch that fails it (default ${DEFAULTS.maxFailurePercent}%)`,
      optionParser(parsePercent),
    )
    .addOption(
      new Option('--on-failure <action>', `what a failed batch does (default ${DEFAULTS.onFailure})`).choices(
        ['pause', 'abort'],
      ),
    )
    .addOption(
      new Option(
        '--rollback [mode]',
        `send devices back to their release: failed or batch (the whole batch when it fails); default ${DEFAULTS.rollback}`,
      )
        .choices(['none', 'failed', 'batch'])
        .preset('failed'),
    )
    .option('--no-rollback', 'leave failed devices where they are')
    .option(
      '--device-timeout <duration>',
      `a device not running the release in this time has timed out (default ${duration(DEFAULTS.deviceTimeoutSeconds)})`,
      optionParser(parseDuration),
    )
    .option(
      '--wait-for-deltas <duration>',
      `before telling a batch, wait up to this long for deltas still being built (default ${DEFAULTS.waitForDeltasSeconds ? duration(DEFAULTS.waitForDeltasSeconds) : '0: never wait'})`,
      optionParser(parseDuration),
    )
    .option(
      '--max-per-minute <n>',
      'tell at most this many devices in any minute (default: a whole batch at once)',
      positiveCount,
    )
    .option(
      '--seed <n>',
      "draw batch members with this seed (a plan's seed reproduces it; default: a new one each rollout)",
      (v: string) => {
        if (!/^\d{1,10}$/.test(v) || Number(v) > 2_147_483_647)
          throw new InvalidArgumentError('expected 0 … 2147483647');
        return Number(v);
      },
    )
    .option(
      '--compare-health',
      'judge each baking batch against devices still on the old release (docs/rollouts.md); the options below imply it',
    )
    .option(
      '--health-margin <percent>',
      `percentage points by which the updated devices must be worse (default ${HEALTH_DEFAULTS.marginPercent})`,
      optionParser(parsePercent),
    )
    .addOption(
      new Option(
        '--on-worse <action>',
        `what a batch worse than its control group does (default ${HEALTH_DEFAULTS.onWorse})`,
      ).choices(['pause', 'abort']),
    )
    .option('--health-metrics <names>', 'app metrics to compare too, comma-separated', (v: string) =>
      v.split(',').filter(Boolean),
    )
    .option('--tag <key[=value]>', 'only devices with this tag', optionParser(parseTagFilter))
    .option('-y, --yes', 'start without asking (needed when stdin is not a terminal)')
    .option('--dry-run', 'print the plan and stop')
    .option('-w, --watch', 'follow the rollout once started (see rollout status --watch)')
    .option('--json', 'print the plan (dry run) or the started rollout as JSON')
    .action(
      action(async ({ connect, env }, fleet: string, given: string, opts: StartOptions) => {
        const client = await connect();
        const releaseId = await resolveRelease(client, given, fleet);
        if (!opts.dryRun) await refuseWhileActive(client, fleet);
        if (opts.batches && opts.ramp) throw new InputError('give --batches or --ramp, not both');
        const strategy = {
          ...(opts.batches ? { batches: opts.batches } : {}),
          ...(opts.ramp ? { ramp: opts.ramp } : {}),
          ...(opts.startAt ? { startAt: opts.startAt } : {}),
          ...(opts.bake !== undefined ? { bakeSeconds: opts.bake } : {}),
          ...(opts.maxFailures !== undefined ? { maxFailurePercent: opts.maxFailures } : {}),
          ...(opts.onFailure ? { onFailure: opts.onFailure } : {}),
          ...(opts.rollback !== undefined
            ? { rollback: opts.rollback === false ? 'none' : opts.rollback }
            : {}),
          ...(opts.deviceTimeout !== undefined ? { deviceTimeoutSeconds: opts.deviceTimeout } : {}),
          ...(opts.waitForDeltas !== undefined ? { waitForDeltasSeconds: opts.waitForDeltas } : {}),
          ...(opts.maxPerMinute !== undefined ? { maxDevicesPerMinute: opts.maxPerMinute } : {}),
          ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
          ...(opts.compareHealth || opts.healthMargin !== undefined || opts.onWorse || opts.healthMetrics
            ? {
                healthComparison: {
                  ...(opts.healthMargin !== undefined ? { marginPercent: opts.healthMargin } : {}),
                  ...(opts.onWorse ? { onWorse: opts.onWorse } : {}),
                  ...(opts.healthMetrics ? { metrics: opts.healthMetrics } : {}),
                },
              }
            : {}),
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
        // The plan's seed: what starts is the plan that was shown and confirmed.
        const started = await client.post<RolloutView & { plan: RolloutPlan }>(
          `${fleetPath(fleet)}/rollouts`,
          {
            ...body,
            strategy: { ...strategy, seed: plan.strategy.seed },
          },
        );
        if (opts.json && !opts.watch) return printJson(started);
        if (!opts.json)
          print(
            `started rollout ${started.id} (${started.state}); follow it: ferry rollout status ${started.id} --watch`,
          );
        if (opts.watch)
          watchExit((await follow(client, started.id, opts.json, env.watchHeartbeatMs ?? 30_000)).state);
      }),
    );

  rollout
    .command('status')
    .description('show a rollout: state, batches with progress, counts by device state, bytes, failures')
    .argument('<id>', 'rollout id, or a unique start of it (4+ characters)')
    .option(
      '-w, --watch',
      'follow it live until it completes (exit 0), or pauses or aborts (exit 6); says what it waits for every 30 s',
    )
    .option('--json', 'print as JSON (with --watch: one JSON object per line as it changes)')
    .action(
      action(async ({ connect, env }, given: string, opts: { watch?: boolean; json?: boolean }) => {
        const client = await connect();
        const id = await resolveRollout(client, given);
        if (opts.watch)
          return watchExit((await follow(client, id, opts.json, env.watchHeartbeatMs ?? 30_000)).state);
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
      .argument('<id>', 'rollout id, or a unique start of it (4+ characters)')
      .option('--json', 'print the rollout as JSON')
      .action(
        action(async ({ connect }, given: string, opts: { json?: boolean }) => {
          const client = await connect();
          const view = await client.post<RolloutView>(
            `${rolloutPath(await resolveRollout(client, given))}/${verb}`,
          );
          if (opts.json) return printJson(view);
          print(`rollout ${view.id}: ${view.state}${view.reason ? ` — ${view.reason}` : ''}`);
        }),
      );
  }

  program
    .command('rollouts')
    .description("list a fleet's rollouts, newest first")
    .argument('[fleet]', 'fleet slug or id')
    .option('-f, --fleet <fleet>', 'the fleet, as an option')
    .addOption(
      new Option('--state <state>', 'only rollouts in this state').choices([
        'scheduled',
        'running',
        'paused',
        'completed',
        'aborted',
      ]),
    )
    .option('--json', 'print as JSON')
    .action(
      action(
        async (
          { connect },
          given: string | undefined,
          opts: { fleet?: string; state?: RolloutState; json?: boolean },
        ) => {
          const fleet = given ?? opts.fleet;
          if (!fleet) throw new InputError('name the fleet: ferry rollouts FLEET');
          const views = await (
            await connect()
          ).get<RolloutView[]>(`${fleetPath(fleet)}/rollouts`, { state: opts.state });
          if (opts.json) return printJson(views);
          if (views.length === 0)
            return print(`fleet ${fleet} has no rollouts: ferry rollout start ${fleet} RELEASE`);
          print(rolloutsTable(views));
        },
      ),
    );
}
