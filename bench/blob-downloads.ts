/**
 * Device downloads served by presigned URLs vs proxied by the server (issue 15, sizing):
 *
 *   npm run bench:downloads -- --mb 64 --clients 1,8,32
 *
 * Starts a real S3 server (Ceph RGW, test/tools/ceph-rgw, or TEST_S3_ENDPOINT), a real server process
 * (`apps/server/dist/main.js`) with `BLOB_STORE=s3://…`, pushes a release with one incompressible layer
 * of `--mb` MiB and, for each number of concurrent clients, downloads the layer's gzip blob `--rounds`
 * times per client as a device does: once proxied (no `Ferry-Accept-Redirect`), once through the 307 to
 * the presigned URL. Every body is hashed and checked against its digest. It reports the aggregate
 * throughput and the CPU the server process spent per GiB delivered (from /proc): the figure that sizes
 * server processes, since a presigned download costs the server one lookup and one HMAC.
 */
import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Release } from '@ferry/protocol';
import { dockerArchive, gnuTarLayer } from '../test/support/hostile-archives';
import { startS3Gateway } from '../test/support/s3-gateway';
import { startServerProcess } from '../test/support/server-process';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const MB = Number(arg('mb', '64'));
const CLIENTS = arg('clients', '1,8,32').split(',').map(Number);
const ROUNDS = Number(arg('rounds', '2'));

/** User + system CPU of process `pid` in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** GET `url` (following one 307 when `redirect`), hashing the body; resolves with the bytes and digest. */
function download(
  url: string,
  apiKey: string,
  redirect: boolean,
): Promise<{ bytes: number; digest: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${apiKey}` };
    if (redirect) headers['ferry-accept-redirect'] = '1';
    const read = (target: string, h: Record<string, string>, hops: number): void => {
      const req = request(target, { headers: h }, (res) => {
        if (res.statusCode === 307 && hops === 0 && res.headers.location) {
          res.resume();
          // The presigned URL carries its own authorization: the device key is not sent to the store.
          read(new URL(res.headers.location, target).toString(), {}, 1);
          return;
        }
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${target}: ${res.statusCode}`));
          return;
        }
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        res.on('end', () => resolve({ bytes, digest: `sha256:${hash.digest('hex')}` }));
        res.on('error', reject);
      }).on('error', (e) => reject(new Error(`${e.message} reused=${req.reusedSocket} hops=${hops}`)));
      req.end();
    };
    read(url, headers, 0);
  });
}

interface Row {
  mode: 'proxied' | 'presigned';
  clients: number;
  gib: number;
  seconds: number;
  serverCpuMs: number;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'ferry-bench-downloads-'));
  const s3 = await startS3Gateway();
  const bucket = await s3.newBucket();
  const server = await startServerProcess({
    ...s3.env(bucket, 'ferry'),
    FERRY_RATE_LIMIT_PER_MINUTE: '100000',
  });
  const pid = server.child.pid as number;
  try {
    await server.api('/v1/fleets', { method: 'POST', json: { name: 'Bench', arch: 'amd64' } });
    const key = await server.api('/v1/fleets/bench/provisioning-keys', { method: 'POST', json: {} });
    const { key: provisioningKey } = (await key.json()) as { key: string };
    const device = (await (
      await server.api('/v1/device/register', { method: 'POST', json: { provisioningKey }, token: null })
    ).json()) as { uuid: string; apiKey: string };
    const layer = gnuTarLayer(join(work, 'layer'), {
      'app/blob': randomBytes(MB * 1024 * 1024).toString('latin1'),
    });
    const archive = await dockerArchive([layer], { repoTag: 'bench:1' });
    const pushed = await server.api('/v1/fleets/bench/releases?version=1', {
      method: 'POST',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    if (pushed.status !== 201) throw new Error(`push: ${pushed.status} ${await pushed.text()}`);
    const release = (await pushed.json()) as Release;
    const blob = release.services[0]!.layers[0]!;
    const url = `${server.url}/v1/blobs/${blob.gzipDigest}`;
    process.stdout.write(
      `layer: ${(blob.gzipSize / 2 ** 20).toFixed(1)} MiB gzip; ${ROUNDS} downloads per client; server pid ${pid}\n`,
    );
    const rows: Row[] = [];
    for (const clients of CLIENTS)
      for (const mode of ['proxied', 'presigned'] as const) {
        const cpu0 = cpuMs(pid);
        const t0 = process.hrtime.bigint();
        let bytes = 0;
        await Promise.all(
          Array.from({ length: clients }, async () => {
            for (let r = 0; r < ROUNDS; r++) {
              const got = await download(url, device.apiKey, mode === 'presigned');
              if (got.digest !== blob.gzipDigest) throw new Error(`${mode}: got ${got.digest}`);
              bytes += got.bytes;
            }
          }),
        );
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const row = { mode, clients, gib: bytes / 2 ** 30, seconds, serverCpuMs: cpuMs(pid) - cpu0 };
        rows.push(row);
        process.stdout.write(
          `${mode.padEnd(9)} ${String(clients).padStart(3)} clients: ${(row.gib * 1024).toFixed(0)} MiB in ${seconds.toFixed(1)} s = ${((row.gib * 1024) / seconds).toFixed(0)} MiB/s; server CPU ${(row.serverCpuMs / row.gib).toFixed(0)} ms/GiB\n`,
        );
      }
    process.stdout.write(
      '\n| clients | proxied MiB/s | presigned MiB/s | server CPU/GiB proxied | presigned |\n',
    );
    process.stdout.write('| ---: | ---: | ---: | ---: | ---: |\n');
    for (const clients of CLIENTS) {
      const p = rows.find((r) => r.clients === clients && r.mode === 'proxied')!;
      const s = rows.find((r) => r.clients === clients && r.mode === 'presigned')!;
      const rate = (r: Row): string => ((r.gib * 1024) / r.seconds).toFixed(0);
      const cpu = (r: Row): string => `${(r.serverCpuMs / r.gib).toFixed(0)} ms`;
      process.stdout.write(`| ${clients} | ${rate(p)} | ${rate(s)} | ${cpu(p)} | ${cpu(s)} |\n`);
    }
  } catch (error) {
    process.stderr.write(`server output (last 3000 characters):\n${server.output().slice(-3000)}\n`);
    throw error;
  } finally {
    await server.stop();
    await s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
