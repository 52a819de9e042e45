#!/usr/bin/env node
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runInBackground } from './background';
import { Simulator } from './simulator';

const USAGE = `usage: ferry-simulator --url http://127.0.0.1:8080 --key fp_… [--count 50]
  [--fail 0.1] [--crash 0] [--hang 0.05] [--offline 0.05] [--step-ms 300] [--mqtt-url mqtt://…] [--name sim]
  [--crashes-per-minute 0] [--offline-per-minute 0] [--release-health RELEASE=CRASHES,OFFLINE …]
  [--background]

Registers COUNT virtual devices with the provisioning key, connects each over MQTT and acts on
target notices like the real agent: downloads deltas or layers, verifies them, reports each step.
Shares (0..1) of devices fail, crash after starting, hang or go offline on each update.
Once a release runs, its app crashes (the engine restarts it: restartCount grows) and the device
drops offline at --crashes-per-minute and --offline-per-minute per device; --release-health sets
both for one release id (repeatable), e.g. --release-health 0c6f…=6,2 for a release that
crash-loops after passing its health checks.
--background: return once every device is connected, leaving them running; prints their pid (stop
them with kill PID) on stdout and where their log is on stderr.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      count: { type: 'string', default: '10' },
      fail: { type: 'string', default: '0' },
      crash: { type: 'string', default: '0' },
      hang: { type: 'string', default: '0' },
      offline: { type: 'string', default: '0' },
      'step-ms': { type: 'string', default: '300' },
      'mqtt-url': { type: 'string' },
      name: { type: 'string', default: 'sim' },
      'crashes-per-minute': { type: 'string', default: '0' },
      'offline-per-minute': { type: 'string', default: '0' },
      'release-health': { type: 'string', multiple: true, default: [] },
      background: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.url || !values.key) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(values.help ? 0 : 64);
  }
  const share = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 1) {
      process.stderr.write(`--${name} must be a share between 0 and 1 (got ${v})\n`);
      process.exit(64);
    }
    return n;
  };
  const rate = (name: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 600) {
      process.stderr.write(`--${name} must be a rate per minute between 0 and 600 (got ${v})\n`);
      process.exit(64);
    }
    return n;
  };
  const releaseHealth: Record<string, { crashesPerMinute: number; offlinePerMinute: number }> = {};
  for (const spec of values['release-health']) {
    const match = /^([^=]+)=([^,]+),([^,]+)$/.exec(spec);
    if (!match) {
      process.stderr.write(`--release-health must be RELEASE=CRASHES,OFFLINE (got ${spec})\n`);
      process.exit(64);
    }
    releaseHealth[match[1] ?? ''] = {
      crashesPerMinute: rate('release-health', match[2] ?? ''),
      offlinePerMinute: rate('release-health', match[3] ?? ''),
    };
  }
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write(`--count must be a positive integer (got ${values.count})\n`);
    process.exit(64);
  }
  if (values.background) {
    const logFile = join(tmpdir(), `ferry-simulator-${values.name}-${process.pid}.log`);
    const args = process.argv.slice(2).filter((a) => a !== '--background');
    const pid = await runInBackground(args, logFile);
    // The pid alone on stdout, so a script can keep it: SIMULATOR=$(npm run -s simulate -- … --background)
    process.stderr.write(
      `${count} simulated devices connected to ${values.url}, running in the background (log ${logFile}); stop them: kill ${pid}\n`,
    );
    process.stdout.write(`${pid}\n`);
    return;
  }
  const simulator = await Simulator.start({
    url: values.url.replace(/\/+$/, ''),
    provisioningKey: values.key,
    count,
    mqttUrl: values['mqtt-url'],
    namePrefix: values.name,
    failShare: share('fail', values.fail),
    crashShare: share('crash', values.crash),
    hangShare: share('hang', values.hang),
    offlineShare: share('offline', values.offline),
    stepMs: Number(values['step-ms']),
    health: {
      crashesPerMinute: rate('crashes-per-minute', values['crashes-per-minute']),
      offlinePerMinute: rate('offline-per-minute', values['offline-per-minute']),
    },
    releaseHealth,
    log: (m) => process.stderr.write(`${m}\n`),
  });
  process.stdout.write(`${count} simulated devices connected to ${values.url}; Ctrl-C stops them\n`);
  const timer = setInterval(() => {
    const statuses = Object.entries(simulator.statuses())
      .map(([s, n]) => `${s} ${n}`)
      .join(', ');
    process.stdout.write(
      `${new Date().toISOString()} ${statuses}; ${simulator.bytesDownloaded()} bytes downloaded\n`,
    );
  }, 5000);
  const stop = (): void => {
    clearInterval(timer);
    void simulator.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`ferry-simulator: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
