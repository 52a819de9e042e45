import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeltaRecord, Release } from '@ferry/protocol';
import { noise } from '../support/agent-images';
import { dockerArchive, gnuTarLayer } from '../support/hostile-archives';
import { TestDevice, TestFleet, createFleet, eventually, registerDevice } from '../support/mqtt-devices';
import { TEST_REDIS_URL, deleteQueueKeys, testQueuePrefix } from '../support/redis-keys';
import { TestServer, DATABASE_KINDS, startTestServer } from '../support/test-server';
import { WorkerProcess, startWorker } from '../support/worker-process';

/** One fleet's two releases of a 300 kB binary and the delta between their layers. */
interface FleetBlobs {
  fleet: TestFleet;
  device: TestDevice;
  layer: string;
  gzip: string;
  config: string;
  delta: string;
}

describe.each(DATABASE_KINDS)('blob downloads are confined to the device’s own fleet (%s)', (kind) => {
  let server: TestServer;
  let worker: WorkerProcess;
  let work: string;
  let queue: string;
  let a: FleetBlobs;
  let b: FleetBlobs;

  const push = async (fleet: TestFleet, binary: Buffer, version: number): Promise<Release> => {
    const layer = gnuTarLayer(join(work, `${fleet.slug}-${version}`), {
      'app/bin': binary.toString('latin1'),
    });
    const archive = await dockerArchive([layer], { repoTag: `${fleet.slug}:${version}` });
    const response = await server.api(`/v1/fleets/${fleet.slug}/releases?version=${version}`, {
      method: 'POST',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as Release;
  };
  const fleetWithDelta = async (name: string, seed: number): Promise<FleetBlobs> => {
    const fleet = await createFleet(server, name);
    const binary = noise(seed, 300_000);
    const v1 = await push(fleet, binary, 1);
    const changed = Buffer.from(binary);
    changed.write(`patched ${name}`, 1000);
    const v2 = await push(fleet, changed, 2);
    const requested = await server.api(`/v1/releases/${v2.id}/deltas`, {
      method: 'POST',
      json: { from: v1.id },
    });
    expect(requested.status).toBe(201);
    const delta = await eventually(
      async () => {
        const list = (await (await server.api(`/v1/releases/${v2.id}/deltas`)).json()) as DeltaRecord[];
        return list[0]?.state === 'ready' ? list[0] : undefined;
      },
      60_000,
      `the delta of ${name}`,
    );
    const service = v2.services[0]!;
    const layer = service.layers[0]!;
    return {
      fleet,
      device: await registerDevice(server, fleet),
      layer: layer.diffId,
      gzip: layer.gzipDigest,
      config: service.configDigest,
      delta: delta.digest!,
    };
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ferry-blob-isolation-'));
    queue = testQueuePrefix('isolation');
    server = await startTestServer(kind, { FERRY_QUEUE_PREFIX: queue });
    worker = await startWorker({ DATA_DIR: server.dataDir, FERRY_QUEUE_PREFIX: queue, LOG_LEVEL: 'warn' });
    a = await fleetWithDelta('Isolated A', 11);
    b = await fleetWithDelta('Isolated B', 12);
  });
  afterAll(async () => {
    await worker?.kill();
    await server?.close();
    if (queue) await deleteQueueKeys(TEST_REDIS_URL, queue);
    rmSync(work, { recursive: true, force: true });
  });

  const fetchAs = async (device: TestDevice, digest: string, method = 'GET'): Promise<number> =>
    (await server.api(`/v1/blobs/${digest}`, { method, token: device.apiKey })).status;
  const kinds = ['layer', 'gzip', 'config', 'delta'] as const;

  it.each(kinds)('a device gets its own fleet’s %s and a 404 for the other fleet’s', async (kind) => {
    expect(await fetchAs(a.device, a[kind])).toBe(200);
    expect(await fetchAs(b.device, b[kind])).toBe(200);
    expect(await fetchAs(a.device, b[kind])).toBe(404);
    expect(await fetchAs(b.device, a[kind])).toBe(404);
    expect(await fetchAs(a.device, b[kind], 'HEAD')).toBe(404);
  });

  it('lets the operator fetch any blob', async () => {
    for (const kind of kinds) {
      expect((await server.api(`/v1/blobs/${a[kind]}`)).status).toBe(200);
      expect((await server.api(`/v1/blobs/${b[kind]}`)).status).toBe(200);
    }
  });
});
