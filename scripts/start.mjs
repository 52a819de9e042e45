#!/usr/bin/env node
// `npm start`: builds when sources changed since the last build (else starts at once), then runs
// the server (API, device API, MQTT broker, dashboard) and one delta worker on the embedded defaults, forwarding signals and stopping both when either exits. When MQTT_PORT is not
// set and 1883 is already taken (a Mosquitto on the same machine, say), the embedded broker takes the
// next free port from 1884 instead, and says so.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIsCurrent } from './build-current.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

if (!buildIsCurrent(root)) {
  process.stderr.write('ferry: sources changed since the last build: npm run build\n');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}

function portFree(port) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '0.0.0.0', () => probe.close(() => resolve(true)));
  });
}

async function mqttPort() {
  if (process.env.MQTT_PORT || process.env.MQTT_URL) return process.env.MQTT_PORT;
  if (await portFree(1883)) return undefined;
  for (let port = 1884; port < 1900; port += 1) {
    if (await portFree(port)) {
      process.stderr.write(
        `ferry: port 1883 is taken (another MQTT broker?); the embedded broker listens on ${port}. Set MQTT_PORT to choose.\n`,
      );
      return String(port);
    }
  }
  return undefined;
}

const port = await mqttPort();
const env = { ...process.env, ...(port ? { MQTT_PORT: port } : {}) };
const children = [
  spawn(process.execPath, [join(root, 'apps/server/dist/main.js')], { stdio: 'inherit', env }),
  spawn(process.execPath, [join(root, 'apps/worker/dist/main.js')], { stdio: 'inherit', env }),
];
let stopping = false;
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill(signal);
};
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop(signal));
for (const child of children) {
  child.on('exit', (code) => {
    stop('SIGTERM');
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(code ?? 0);
    else process.exitCode = code ?? 0;
  });
}
