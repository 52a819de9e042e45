#!/usr/bin/env node
// `npm run demo`: a whole Ferry loop on this machine. Uses the server at FERRY_URL (default
// http://127.0.0.1:8080) or starts one (server + worker, embedded defaults) when none answers; builds
// a sample app from real Debian packages (v1, then v2 with more packages); registers a simulated fleet
// (plus one real agent when a Docker engine answers on /var/run/docker.sock); pushes v1 and rolls it
// out, pushes v2 and runs a staged rollout, showing progress and the bytes deltas saved.
// Environment: FERRY_URL, FERRY_TOKEN, PORT, DATA_DIR (as the server's), DEMO_DEVICES (24),
// DEMO_DOCKER_SOCKET (/var/run/docker.sock), DEMO_WORK_DIR (DATA_DIR/demo: Debian packages and the
// built sample app, kept between runs). Any failure prints its reason and exits 1.
import { execFileSync, spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// The server the demo starts listens on PORT, so the URL it checks follows PORT too.
const url = (process.env.FERRY_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/+$/, '');
const dataDir = process.env.DATA_DIR ?? join(root, 'data');
const work = process.env.DEMO_WORK_DIR ?? join(dataDir, 'demo');
const deviceCount = Number(process.env.DEMO_DEVICES ?? 24);
const tty = process.stdout.isTTY;
const children = [];
/** What went wrong along the way: printed with reasons at the end, and the demo exits 1. */
const failures = [];

const say = (text) => process.stdout.write(`${text}\n`);
const step = (text) => say(`\n\x1b[1m▸ ${text}\x1b[0m`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes) => `${(bytes / 1e6).toFixed(2)} MB`;
const kb = (bytes) => (bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : mb(bytes));

function cleanup() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

async function ready() {
  try {
    return (await fetch(`${url}/readyz`)).ok;
  } catch {
    return false;
  }
}

async function ensureServer() {
  if (await ready()) return say(`Using the Ferry server at ${url}`);
  say(`No server answers at ${url}: starting one (server + worker, data in ${dataDir})`);
  const child = spawn(process.execPath, [join(root, 'scripts', 'start.mjs')], {
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  for (let i = 0; i < 120 && !(await ready()); i += 1) {
    if (child.exitCode !== null) throw new Error('the server exited (its message is above)');
    await sleep(500);
  }
  if (!(await ready())) throw new Error('the server did not become ready in 60 s');
}

function token() {
  if (process.env.FERRY_TOKEN) return process.env.FERRY_TOKEN;
  const file = join(dataDir, 'admin-token');
  if (!existsSync(file))
    throw new Error(`no FERRY_TOKEN and no ${file}: set FERRY_TOKEN to the server's admin token`);
  return readFileSync(file, 'utf8').trim();
}

let admin = '';
async function api(path, init = {}) {
  const response = await fetch(`${url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(init.json ? { 'content-type': 'application/json' } : {}),
      ...init.headers,
    },
    body: init.json ? JSON.stringify(init.json) : init.body,
    ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
  });
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok && !init.allow?.includes(response.status))
    throw new Error(`${init.method ?? 'GET'} ${path}: ${response.status} ${body?.message ?? text}`);
  return { status: response.status, body };
}

function run(command, args, options = {}) {
  return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }).toString();
}

/** Debian packages: v1 is a small toolbox; v2 upgrades the app and adds packages. */
const PACKAGES = {
  v1: ['busybox-static', 'jq', 'libjq1', 'libonig5'],
  v2: ['busybox-static', 'jq', 'libjq1', 'libonig5', 'file', 'libmagic1', 'libmagic-mgc', 'tree'],
};

function downloadDebs() {
  const debs = join(work, 'debs');
  mkdirSync(debs, { recursive: true });
  const wanted = [...new Set([...PACKAGES.v1, ...PACKAGES.v2])];
  const have = () => readdirSync(debs).filter((f) => f.endsWith('.deb'));
  const missing = () => wanted.filter((p) => !have().some((f) => f.startsWith(`${p}_`)));
  if (missing().length === 0) return debs;
  try {
    run('apt-get', ['download', ...missing()], { cwd: debs });
  } catch {
    say('  apt-get download needs package lists: running apt-get update once');
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['download', ...missing()], { cwd: debs });
  }
  return debs;
}

function buildApp(version, debs) {
  const archive = join(work, `demo-app-${version}.tar`);
  if (existsSync(archive)) return archive;
  const layout = join(work, 'oci');
  if (!existsSync(layout)) {
    run('umoci', ['init', '--layout', layout]);
    run('umoci', ['new', '--image', `${layout}:base`]);
  }
  const bundle = join(work, `bundle-${version}`);
  rmSync(bundle, { recursive: true, force: true });
  run('umoci', ['unpack', '--rootless', '--image', `${layout}:base`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  for (const pkg of PACKAGES[version]) {
    const deb = readdirSync(debs).find((f) => f.startsWith(`${pkg}_`));
    run('dpkg-deb', ['-x', join(debs, deb), rootfs]);
  }
  mkdirSync(join(rootfs, 'app'), { recursive: true });
  writeFileSync(join(rootfs, 'app', 'VERSION'), `${version}\n`);
  writeFileSync(
    join(rootfs, 'app', 'run.sh'),
    `#!/bin/busybox sh\necho "demo app ${version}"\nexec /bin/busybox sleep 2147483647\n`,
    { mode: 0o755 },
  );
  run('umoci', ['repack', '--image', `${layout}:${version}`, bundle]);
  run('umoci', ['config', '--image', `${layout}:${version}`, '--config.cmd', '/app/run.sh']);
  run('skopeo', [
    'copy',
    '-q',
    `oci:${layout}:${version}`,
    `docker-archive:${archive}:demo-app:${version.slice(1)}`,
  ]);
  rmSync(bundle, { recursive: true, force: true });
  return archive;
}

async function push(fleet, archive) {
  const body = Readable.toWeb(createReadStream(archive));
  const { body: release } = await api(`/v1/fleets/${fleet}/releases`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-tar' },
  });
  const layers = release.services.flatMap((s) => s.layers);
  say(
    `  pushed release v${release.version} (${mb(statSync(archive).size)} archive): ${layers.length} layer(s), ${layers.map((l) => `${kb(l.size)} → gzip ${kb(l.gzipSize)}`).join(', ')}`,
  );
  return release;
}

/** The demo's compose app: `app` writes a greeting with the fleet's SITE variable into the volume. */
const COMPOSE_APP = `services:
  app:
    image: demo-app:2
    environment:
      GREETING: hello
    command: ["/bin/busybox", "sh", "-c", "echo \\"$GREETING from $SITE\\" >> /data/log; exec /bin/busybox sleep 2147483647"]
    volumes: ["data:/data"]
  sidecar:
    image: demo-app:2
    depends_on: [app]
    volumes: ["data:/data:ro"]
volumes:
  data:
`;

/** Pushes a compose release: a release bundle (docs/compose.md) made with GNU tar. */
async function pushCompose(fleet, compose, archives) {
  const dir = join(work, `bundle-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'docker-compose.yml'), compose);
  const names = archives.map((a, i) => {
    execFileSync('cp', [a, join(dir, `${i}.tar`)]);
    return `${i}.tar`;
  });
  execFileSync('tar', ['-cf', join(dir, 'bundle.tar'), '-C', dir, 'docker-compose.yml', ...names]);
  const { body: release } = await api(`/v1/fleets/${fleet}/releases`, {
    method: 'POST',
    body: Readable.toWeb(createReadStream(join(dir, 'bundle.tar'))),
    headers: { 'content-type': 'application/vnd.ferry.release+tar' },
  });
  rmSync(dir, { recursive: true, force: true });
  say(`  pushed compose release v${release.version}: ${release.services.length} services`);
  return release;
}

/** The real agent's per-service states, as `ferry device D` shows them. */
async function showServices(fleet) {
  for (let i = 0; i < 60; i += 1) {
    const { body: devices } = await api(`/v1/fleets/${fleet}/devices?search=real-agent`);
    const services = devices.find((d) => d.name === 'real-agent')?.services;
    if (services?.length) {
      for (const s of services) say(`  real agent: ${s.name} ${s.state}${s.health ? ` (${s.health})` : ''}`);
      return;
    }
    await sleep(500);
  }
}

async function waitForDeltas(release) {
  for (let i = 0; i < 240; i += 1) {
    const { body: deltas } = await api(`/v1/releases/${release.id}/deltas`);
    const open = deltas.filter((d) => d.state === 'queued' || d.state === 'building');
    if (deltas.length > 0 && open.length === 0) return deltas;
    if (tty)
      process.stdout.write(`\r  building deltas: ${deltas.length - open.length}/${deltas.length} ready…`);
    await sleep(500);
  }
  throw new Error('deltas were not built within 2 minutes: is the worker running?');
}

function bar(done, total, width = 24) {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'█'.repeat(filled)}${'·'.repeat(width - filled)}]`;
}

async function watch(rolloutId) {
  let last = '';
  for (;;) {
    const { body: r } = await api(`/v1/rollouts/${rolloutId}`);
    const done =
      (r.counts.succeeded ?? 0) +
      (r.counts.failed ?? 0) +
      (r.counts.timed_out ?? 0) +
      (r.counts.rolled_back ?? 0);
    const counts = Object.entries(r.counts)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const line = `  ${bar(done, r.total)} batch ${r.currentBatch}/${r.batches.length} ${r.state} · ${counts} · sent ${kb(r.bytes.sent)} of ${kb(r.bytes.full)} full`;
    if (tty) process.stdout.write(`\r${line.padEnd(last.length)}`);
    else if (line !== last) say(line);
    last = line;
    if (['completed', 'aborted', 'paused'].includes(r.state)) {
      if (tty) process.stdout.write('\n');
      return r;
    }
    await sleep(500);
  }
}

async function rollout(fleet, release, batches, bakeSeconds) {
  const strategy = {
    batches,
    bakeSeconds,
    maxFailurePercent: 20,
    onFailure: 'pause',
    deviceTimeoutSeconds: 300,
    rollback: 'failed',
  };
  const {
    body: { plan },
  } = await api(`/v1/fleets/${fleet}/rollouts`, {
    method: 'POST',
    json: { releaseId: release.id, strategy, dryRun: true },
  });
  say(
    `  plan: ${plan.devices.length} devices in batches of ${plan.batches.map((b) => b.size).join(', ')}; projected ${kb(plan.bytes.projected)} against ${kb(plan.bytes.full)} for full layers`,
  );
  const { body: started } = await api(`/v1/fleets/${fleet}/rollouts`, {
    method: 'POST',
    json: { releaseId: release.id, strategy },
  });
  const id = started.rollout?.id ?? started.id;
  const done = await watch(id);
  if (done.state !== 'completed') {
    const reasons = done.failures
      .slice(0, 5)
      .map((f) => `${f.name}: ${f.state}${f.reason ? ` (${f.reason})` : ''}`)
      .join('; ');
    failures.push(
      `rollout of v${release.version} ${done.state}: ${done.reason ?? 'no reason given'}${reasons ? ` — ${reasons}` : ''}`,
    );
  }
  return done;
}

async function dockerAvailable() {
  const socket = process.env.DEMO_DOCKER_SOCKET ?? '/var/run/docker.sock';
  if (!existsSync(socket)) return null;
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: 1000 }, (res) =>
      resolve(res.statusCode === 200 ? socket : null),
    );
    req.on('error', () => resolve(null));
    req.end();
  });
}

async function main() {
  step('Ferry server');
  await ensureServer();
  admin = token();

  step('Sample app from real Debian packages (apt-get download, dpkg-deb, umoci, skopeo)');
  mkdirSync(work, { recursive: true });
  const debs = downloadDebs();
  const v1Archive = buildApp('v1', debs);
  const v2Archive = buildApp('v2', debs);
  say(`  v1: ${PACKAGES.v1.join(' ')}\n  v2: ${PACKAGES.v2.join(' ')}`);

  step('Fleet and devices');
  const slug = `demo-${Date.now().toString(36)}`;
  await api('/v1/fleets', {
    method: 'POST',
    json: { name: `Demo ${new Date().toISOString().slice(0, 16)}`, slug, arch: 'amd64' },
  });
  const { body: key } = await api(`/v1/fleets/${slug}/provisioning-keys`, {
    method: 'POST',
    json: { name: 'demo' },
  });
  const { Simulator } = require(join(root, 'devices', 'simulator', 'dist', 'index.js'));
  const simulator = await Simulator.start({
    url,
    provisioningKey: key.key,
    count: deviceCount,
    stepMs: 150,
    namePrefix: 'sim',
  });
  say(`  fleet ${slug}: ${deviceCount} simulated devices registered and connected over MQTT`);
  const docker = await dockerAvailable();
  if (docker && existsSync(join(root, 'devices', 'agent', 'dist', 'ferry-agent.js'))) {
    const agentDir = join(work, `agent-${slug}`);
    const agent = spawn(process.execPath, [join(root, 'devices', 'agent', 'dist', 'ferry-agent.js')], {
      env: {
        ...process.env,
        FERRY_API_URL: url,
        FERRY_PROVISIONING_KEY: key.key,
        FERRY_DATA_DIR: agentDir,
        FERRY_ENGINE_SOCKET: docker,
        FERRY_DEVICE_NAME: 'real-agent',
        FERRY_NETWORK_MODE: 'none',
      },
      stdio: 'ignore',
    });
    children.push(agent);
    say(`  plus one real agent on the Docker engine at ${docker}`);
    await sleep(3000);
  } else {
    say('  (no Docker engine on /var/run/docker.sock: simulated devices only)');
  }

  step('Release v1: first install (full layers)');
  const v1 = await push(slug, v1Archive);
  const first = await rollout(slug, v1, ['100%'], 1);

  step('Release v2: deltas built before any device asks');
  const v2 = await push(slug, v2Archive);
  const deltas = await waitForDeltas(v2);
  if (tty) process.stdout.write('\n');
  for (const d of deltas) {
    const layer = d.target.slice(7, 19);
    if (d.state === 'failed') {
      say(`  delta ${layer}: FAILED — ${d.error ?? 'no reason recorded'} (devices get the full layer)`);
      failures.push(`delta ${layer} failed: ${d.error ?? 'no reason recorded'}`);
    } else if (d.state === 'full') {
      say(
        `  delta ${layer}: not smaller than the gzip'd layer (${kb(d.targetGzipSize)}): devices get the layer`,
      );
    } else {
      say(
        `  delta ${layer}: ${kb(d.size ?? 0)} instead of ${kb(d.targetGzipSize)} gzip (${(d.savings * 100).toFixed(1)} % saved)`,
      );
    }
  }

  step('Staged rollout of v2: batches 1, 25 %, 100 %, 3 s bake, pause above 20 % failures');
  const second = await rollout(slug, v2, [1, '25%', '100%'], 3);

  step('Release v3: a compose app (two services, one named volume, one configuration variable)');
  await api(`/v1/fleets/${slug}/variables`, { method: 'POST', json: { name: 'SITE', value: 'demo-site' } });
  say('  fleet variable SITE=demo-site (reaches the devices without a release; docs/variables.md)');
  const v3 = await pushCompose(slug, COMPOSE_APP, [v2Archive]);
  say(`  services: ${v3.manifest.services.map((s) => `${s.name} (${s.image})`).join(', ')}`);
  const third = await rollout(slug, v3, ['100%'], 1);
  if (docker) await showServices(slug);

  step('Summary');
  say(`  v1 rollout ${first.state}: ${kb(first.bytes.sent)} sent (full layers: ${kb(first.bytes.full)})`);
  if (second.bytes.sent === 0 || second.bytes.full === 0) {
    failures.push(
      `v2 rollout: devices reported ${kb(second.bytes.sent)} downloaded of ${kb(second.bytes.full)}: nothing to measure savings on`,
    );
  } else {
    say(
      `  v2 rollout ${second.state}: ${kb(second.bytes.sent)} sent instead of ${kb(second.bytes.full)} for full layers` +
        ` — ${(100 * (1 - second.bytes.sent / second.bytes.full)).toFixed(1)} % saved by deltas`,
    );
  }
  say(`  v3 (compose app) rollout ${third.state}`);
  say(`  devices by state: ${JSON.stringify(simulator.statuses())}`);
  say(`\n  Dashboard: ${url}/dashboard  (log in with the admin token in ${join(dataDir, 'admin-token')})`);
  await simulator.stop();
  if (failures.length > 0) {
    process.stderr.write(`\ndemo failed:\n${failures.map((f) => `  - ${f}`).join('\n')}\n`);
    cleanup();
    process.exit(1);
  }
  if (children.length > 0 && tty) {
    say('  The server started by the demo keeps running for the dashboard; Ctrl-C stops it.');
    await new Promise(() => undefined);
  }
  cleanup();
}

main().catch((error) => {
  process.stderr.write(`\ndemo failed: ${error.message}\n`);
  cleanup();
  process.exit(1);
});
