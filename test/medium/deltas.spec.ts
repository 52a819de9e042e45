import { Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { DeltaJobData, DeltaJobName, DeltaJobResult, DeltaRecord, QueueName, Release } from '@ferry/protocol';
import { BlobsModule } from '../../apps/server/src/blobs/blobs.module';
import { DeltasModule } from '../../apps/server/src/deltas/deltas.module';
import { DeltasRepository } from '../../apps/server/src/deltas/deltas.repository';
import { DeltasService } from '../../apps/server/src/deltas/deltas.service';
import { DeviceStateModule } from '../../apps/server/src/device-state/device-state.module';
import { DeviceStateService } from '../../apps/server/src/device-state/device-state.service';
import { DevicesModule } from '../../apps/server/src/devices/devices.module';
import { FleetsService } from '../../apps/server/src/fleets/fleets.service';
import { Medium, pushRelease, registerDevices, startMedium } from '../support/medium';
import { DATABASE_KINDS } from '../support/test-server';

/**
 * The deltas service alone: planning, enqueueing and recording, on a real database and the real BullMQ
 * queue in Redis. A BullMQ worker in this process stands in for apps/worker (whose builder has its own
 * medium test) and answers each job with what the test tells it to.
 */
describe.each(DATABASE_KINDS)('deltas service on %s', (kind) => {
  let m: Medium;
  let deltas: DeltasService;
  let queue: Queue;
  let queueEvents: QueueEvents;
  let fleets = 0;

  beforeAll(async () => {
    m = await startMedium(kind, [BlobsModule, DevicesModule, DeviceStateModule, DeltasModule]);
    deltas = m.get(DeltasService);
    const connection = { url: m.config.redisUrl, maxRetriesPerRequest: null };
    queue = new Queue(QueueName.Deltas, { connection, prefix: m.config.queuePrefix });
    queueEvents = new QueueEvents(QueueName.Deltas, { connection, prefix: m.config.queuePrefix });
    await queueEvents.waitUntilReady();
  });
  // Each test works on its own jobs: reconcile re-enqueues what earlier tests left queued.
  beforeEach(() => queue.drain());
  afterAll(async () => {
    await queueEvents.close();
    await queue.close();
    await m.close();
  });

  /** A fleet with v1 and v2 (one layer each, different), and `devices` devices reporting v1. */
  async function fleetWithTwoReleases(devices: number): Promise<{ v1: Release; v2: Release }> {
    fleets += 1;
    const fleet = await m.get(FleetsService).create({ name: `deltas ${kind} ${fleets}`, arch: 'amd64' });
    const files = (v: number) => ({ 'app/version': `v${v}\n`, 'app/fleet': `${fleet.id}\n` });
    const v1 = await pushRelease(m, fleet.slug, 1, files(1));
    const uuids = (await registerDevices(m, fleet.slug, devices)).map((d) => d.uuid);
    const state = m.get(DeviceStateService);
    for (const uuid of uuids) state.report(uuid, { status: 'running', releaseId: v1.id }, m.clock.iso());
    await state.flush();
    const v2 = await pushRelease(m, fleet.slug, 2, files(2));
    return { v1, v2 };
  }

  const layer = (release: Release) => release.services[0]!.layers[0]!;

  /** Runs the next job of the queue through `answer`, like a worker would, and returns its key. */
  async function work(answer: (data: DeltaJobData) => DeltaJobResult): Promise<string> {
    let key = '';
    const worker = new Worker(
      QueueName.Deltas,
      (job: Job<DeltaJobData>) => {
        key = job.data.key;
        return Promise.resolve(answer(job.data));
      },
      { connection: { url: m.config.redisUrl, maxRetriesPerRequest: null }, prefix: m.config.queuePrefix },
    );
    try {
      await new Promise<void>((resolve) => {
        const done = () => resolve();
        worker.once('completed', done);
        worker.once('failed', done);
      });
    } finally {
      await worker.close();
    }
    return key;
  }

  async function record(key: string): Promise<DeltaRecord> {
    return deltas.get(key);
  }

  it('plans the deltas of a pushed release from the releases its devices run, and enqueues each once', async () => {
    const { v1, v2 } = await fleetWithTwoReleases(2);
    // Eager planning runs on the release-pushed event: wait for its record.
    let planned: DeltaRecord[] = [];
    for (let i = 0; i < 100 && planned.length === 0; i += 1) {
      planned = await deltas.listForRelease(v2.id);
      if (planned.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(planned.map((d) => [d.bases, d.target, d.state])).toEqual([
      [[layer(v1).diffId], layer(v2).diffId, 'queued'],
    ]);
    // The record is written before its job is added (a record without a job is enqueued again at
    // the next start), so on a busy machine the job may come a moment after the record.
    let job = await queue.getJob(planned[0]!.key);
    for (let i = 0; i < 100 && !job; i += 1) {
      await new Promise((r) => setTimeout(r, 50));
      job = await queue.getJob(planned[0]!.key);
    }
    expect(job?.name).toBe(DeltaJobName.Build);
    expect(job?.data).toEqual({
      key: planned[0]!.key,
      bases: [layer(v1).diffId],
      target: layer(v2).diffId,
      targetGzipSize: layer(v2).gzipSize,
      installId: m.config.installId,
    });
    // Asking again (a device on demand, a second planning) neither duplicates the record nor the job.
    const again = await deltas.planBetween(v1, v2);
    expect(again.map((d) => d.key)).toEqual([planned[0]!.key]);
    expect((await deltas.listForRelease(v2.id)).length).toBe(1);
    expect(
      (await queue.getJobs(['waiting', 'active', 'delayed'])).filter((j) => j.id === planned[0]!.key),
    ).toHaveLength(1);
    await queue.remove(planned[0]!.key);
  });

  it('records a built delta as ready, a delta no smaller than the layer as full, and a final failure as failed', async () => {
    const { v1, v2 } = await fleetWithTwoReleases(0);
    const digest = `sha256:${'e'.repeat(64)}`;
    const [ready] = await deltas.planBetween(v1, v2);
    const key = await work(() => ({ kind: 'delta', digest, size: 123, encodeMs: 7 }));
    expect(key).toBe(ready!.key);
    await deltas.settle(key);
    expect(await record(key)).toMatchObject({ state: 'ready', digest, size: 123, error: null });
    // A finished record is never moved back by a late event.
    await m.get(DeltasRepository).update(key, { state: 'building' });
    expect((await record(key)).state).toBe('ready');

    const full = await deltas.request([layer(v2).diffId], {
      diffId: layer(v1).diffId,
      size: layer(v1).size,
      gzipSize: layer(v1).gzipSize,
    });
    expect(await work(() => ({ kind: 'full', deltaSize: 999, encodeMs: 1 }))).toBe(full.key);
    await deltas.settle(full.key);
    expect(await record(full.key)).toMatchObject({ state: 'full', digest: null, size: 999 });
  });

  it('records a final failure with its reason, and builds it again when asked again', async () => {
    const { v1, v2 } = await fleetWithTwoReleases(0);
    const [planned] = await deltas.planBetween(v1, v2);
    await work(() => {
      throw new UnrecoverableError('stored layer is corrupt');
    });
    await deltas.settle(planned!.key);
    expect(await record(planned!.key)).toMatchObject({ state: 'failed', error: 'stored layer is corrupt' });
    expect(await deltas.forTargets([layer(v2).diffId])).toHaveLength(1);

    const retried = await deltas.planBetween(v1, v2);
    expect(retried[0]).toMatchObject({ key: planned!.key, state: 'queued', error: null });
    expect(await (await queue.getJob(planned!.key))?.getState()).toBe('waiting');
    await queue.remove(planned!.key);
  });

  it('enqueues again a queued delta whose job Redis lost, on reconcile', async () => {
    const { v1, v2 } = await fleetWithTwoReleases(0);
    const [planned] = await deltas.planBetween(v1, v2);
    await queue.remove(planned!.key);
    expect(await queue.getJob(planned!.key)).toBeUndefined();
    await deltas.reconcile();
    const job = await queue.getJob(planned!.key);
    expect(job?.data).toMatchObject({ key: planned!.key, target: layer(v2).diffId });
    expect((await record(planned!.key)).state).toBe('queued');
    await queue.remove(planned!.key);
  });

  it('records a worker result that does not parse as failed, never as ready', async () => {
    const { v1, v2 } = await fleetWithTwoReleases(0);
    const [planned] = await deltas.planBetween(v1, v2);
    expect(await work(() => ({ kind: 'delta', digest: 'not a digest' }) as unknown as DeltaJobResult)).toBe(
      planned!.key,
    );
    await deltas.settle(planned!.key);
    expect(await record(planned!.key)).toMatchObject({
      state: 'failed',
      error: 'worker returned a malformed result',
    });
  });
});
