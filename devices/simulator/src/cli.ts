#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { Simulator } from './simulator';

const USAGE = `usage: ferry-simulator --url http://127.0.0.1:8080 --key fp_… [--count 50]
  [--fail 0.1] [--crash 0] [--hang 0.05] [--offline 0.05] [--step-ms 300] [--mqtt-url mqtt://…] [--name sim]

Registers COUNT virtual devices with the provisioning key, connects each over MQTT and acts on
target notices like the real agent: downloads deltas or layers, verifies them, reports each step.
Shares (0..1) of devices fail, crash after starting, hang or go offline on each update.`;

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
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) {
    process.stderr.write(`--count must be a positive integer (got ${values.count})\n`);
    process.exit(64);
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
