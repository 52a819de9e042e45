import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, UnrecoverableError } from 'bullmq';
import { DeltaJobName } from '@ferry/protocol';
import { FileBlobStore, RedisOutageMonitor } from '@ferry/storage';
import { loadWorkerConfig } from '../config/worker-config';
import { DeltaWorkersModule } from './delta-workers.module';
import {
  DELTA_JOB_HANDLERS,
  MissingJobHandlerError,
  checkJobHandlers,
  runDeltaJob,
} from './delta-job-handlers';

describe('delta job handlers', () => {
  const config = loadWorkerConfig({ DATA_DIR: '/nonexistent/ferry-worker' }, '0123456789abcdef');
  const monitor = new RedisOutageMonitor(config.redisUrl, { warn: () => undefined, log: () => undefined });
  afterAll(() => monitor.close());

  it('has a handler for every delta job name, so the worker boots', () => {
    expect(() => checkJobHandlers(Object.values(DeltaJobName))).not.toThrow();
    expect(() => DeltaWorkersModule.forRoot(config, monitor)).not.toThrow();
  });

  it('refuses to boot when a job name has no handler, naming it', () => {
    expect(() => DeltaWorkersModule.forRoot(config, monitor, {})).toThrow(MissingJobHandlerError);
    expect(() => DeltaWorkersModule.forRoot(config, monitor, {})).toThrow(
      /no handler for delta job "build-delta"/,
    );
    expect(() => checkJobHandlers([DeltaJobName.Build, 'prune-deltas'], DELTA_JOB_HANDLERS)).toThrow(
      /"prune-deltas"/,
    );
  });

  it('fails a job of an unknown name without retries, and runs a known one by its handler', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-handlers-'));
    try {
      const store = new FileBlobStore(dir);
      const job = (name: string, data: unknown) => ({ name, data }) as unknown as Job;
      await expect(runDeltaJob(store, job('toString', {}))).rejects.toThrow(UnrecoverableError);
      await expect(runDeltaJob(store, job('prune-deltas', {}))).rejects.toThrow(
        /no handler for delta job "prune-deltas"/,
      );
      // The build handler itself: bad job data can never succeed, so it is unrecoverable too.
      await expect(runDeltaJob(store, job(DeltaJobName.Build, { key: 'x' }))).rejects.toThrow(
        UnrecoverableError,
      );
      const seen: string[] = [];
      const result = await runDeltaJob(store, job('probe', { n: 1 }), {
        probe: (s, j) => {
          seen.push(j.name);
          expect(s).toBe(store);
          return Promise.resolve({ kind: 'full', deltaSize: 1, encodeMs: 0 });
        },
      });
      expect(seen).toEqual(['probe']);
      expect(result.kind).toBe('full');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails a job whose layer is not in this worker’s DATA_DIR without retries, naming the layer and the likely cause', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-handlers-'));
    try {
      const missing = `sha256:${'a'.repeat(64)}`;
      const target = `sha256:${'b'.repeat(64)}`;
      const job = {
        name: DeltaJobName.Build,
        data: {
          key: 'c'.repeat(64),
          bases: [missing],
          target,
          targetGzipSize: 10,
          installId: '0123456789abcdef',
        },
      } as unknown as Job;
      const install = { id: '0123456789abcdef', dataDir: dir, queuePrefix: 'ferry-0123456789abcdef' };
      const run = runDeltaJob(new FileBlobStore(dir), job, DELTA_JOB_HANDLERS, { install });
      await expect(run).rejects.toThrow(UnrecoverableError);
      await expect(runDeltaJob(new FileBlobStore(dir), job, DELTA_JOB_HANDLERS, { install })).rejects.toThrow(
        `base layer 1 of 1 ${missing} is not in this worker's blob store: this worker's DATA_DIR (${dir}) is not ` +
          `where its server keeps blobs (mount the server's DATA_DIR on this worker), or the blob was deleted`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
