#!/usr/bin/env node
// `npm start`: runs the server (API, device API, MQTT broker, dashboard) and one delta worker on the
// embedded defaults, forwarding signals and stopping both when either exits.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const children = [
  spawn(process.execPath, [join(root, 'apps/server/dist/main.js')], { stdio: 'inherit' }),
  spawn(process.execPath, [join(root, 'apps/worker/dist/main.js')], { stdio: 'inherit' }),
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
