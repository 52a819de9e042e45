import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { releaseSpecs } from '../devices/agent/src/containers';
import { Release } from '@ferry/protocol';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';

/**
 * What goes wrong on boards, made to happen against the real server, worker, broker and engine:
 * a full disk, a tampered manifest, an update lock, a corrupt delta, a truncated download, a delta
 * for the wrong base, a valid delta that rebuilds another layer, a release whose containers die, an
 * engine that loses a layer the target said the device held, and one that finished a create for an
 * agent killed meanwhile.
 */
describe('device agent: faults', () => {
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess | undefined;
  let uuid: string;
  let dataDir: string;
  let lock: string;
  const releases: Release[] = [];

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('faults');
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 2 },
      { name: '3', edits: 4 },
      { name: '4', edits: 6 },
      { name: '5', edits: 8, broken: true },
      { name: '7', edits: 10 },
      { name: '8', edits: 12 },
      { name: '9', edits: 0, from: { name: '7', extraBytes: 24_000 } },
    ]);
    for (const v of [1, 2, 3, 4, 5]) releases[v] = await world.push(images.archive(String(v)), v);
    for (const v of [2, 3, 4, 5]) await world.requestDeltas(releases[v]!.id, releases[v - 1]!.id);
    for (const v of [2, 3, 4, 5]) await world.deltasSettled(releases[v]!.id, 1);
    dataDir = join(world.work, 'device');
    mkdirSync(dataDir);
    lock = join(world.work, 'faults-updates.lock');
  }, 240_000);
  afterAll(async () => {
    await agent?.kill();
    try {
      execFileSync('umount', [dataDir]);
    } catch {
      // not mounted
    }
    await world?.close();
  }, 60_000);

  const explain = (e: Error): never => {
    throw new Error(`${e.message}\n${agent?.output().slice(-5000) ?? ''}`);
  };
  const deltaOf = (v: number): { digest: string; size: number } => {
    const layer = releases[v]!.services[0]!.layers[1]!;
    return { digest: layer.gzipDigest, size: layer.gzipSize };
  };
  const readyDelta = async (v: number): Promise<string> => {
    const [delta] = await world.deltasSettled(releases[v]!.id, 1);
    expect(delta?.state).toBe('ready');
    return delta!.digest!;
  };

  it('defers with the reason when the data disk is too small, then installs once there is room', async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dataDir]);
    ({ agent, uuid } = await world.startAgent(dataDir, { FERRY_UPDATE_LOCK: lock }));
    await world.setTarget(uuid, releases[1]!.id);
    const device = await world.reported(uuid, 'deferred', releases[1]!.id, 30_000).catch(explain);
    expect(device.report?.error).toMatch(/not enough disk/);
    expect(agent.child.exitCode).toBeNull();
    expect((await world.engine.managed()).length).toBe(0);
    execFileSync('mount', ['-o', 'remount,size=64m', dataDir]);
    await world.reported(uuid, 'running', releases[1]!.id, 60_000).catch(explain);
    expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
  }, 120_000);

  it('refuses a release whose manifest does not verify under the pinned key, fetching nothing', async () => {
    const served = world.proxy.served.size;
    world.proxy.rewriteTarget = async (target) => {
      const release = target.release as { manifest: { version: number } } | null;
      if (release) release.manifest.version += 100;
      return world.resignTarget(target);
    };
    try {
      await world.setTarget(uuid, releases[2]!.id);
      const device = await world.reported(uuid, 'failed', releases[2]!.id, 30_000).catch(explain);
      expect(device.report?.error).toMatch(/not signed by the fleet key/);
      expect(world.proxy.served.size).toBe(served);
      expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
    } finally {
      world.proxy.rewriteTarget = null;
    }
  }, 60_000);

  it('falls back to the full layer when the delta arrives corrupt, and holds the swap while the update lock is held', async () => {
    const delta = await readyDelta(2);
    world.proxy.faults.set(delta, 'corrupt');
    writeFileSync(lock, '');
    try {
      agent!.child.kill('SIGKILL');
      await agent!.exited;
      ({ agent } = await world.startAgent(dataDir, { FERRY_UPDATE_LOCK: lock }));
      const deferred = await world.reported(uuid, 'deferred', releases[2]!.id, 60_000).catch(explain);
      expect(deferred.report?.error).toMatch(/update lock/);
      // Downloads went on; the old release still runs.
      expect(world.proxy.served.get(deltaOf(2).digest)).toBe(deltaOf(2).size);
      expect((await runningReleases(world.engine)).running).toEqual([releases[1]!.id]);
      rmSync(lock);
      await world.reported(uuid, 'running', releases[2]!.id, 60_000).catch(explain);
    } finally {
      world.proxy.faults.delete(delta);
      rmSync(lock, { force: true });
    }
    const fallback = agent.lines().find((l) => l.msg === 'download.fallback');
    expect(String(fallback?.reason)).toMatch(/downloaded as sha256/);
    expect(
      agent
        .lines()
        .some(
          (l) =>
            l.msg === 'reported' && typeof l.error === 'string' && l.error.startsWith('download.fallback'),
        ),
    ).toBe(true);
    expect((await runningReleases(world.engine)).running).toEqual([releases[2]!.id]);
  }, 120_000);

  it('resumes a truncated delta download with a Range request instead of starting over', async () => {
    const delta = await readyDelta(3);
    world.proxy.faults.set(delta, 'truncate-once');
    await world.setTarget(uuid, releases[3]!.id);
    await world.reported(uuid, 'running', releases[3]!.id, 60_000).catch(explain);
    const requests = world.proxy.requests.filter((r) => r.digest === delta);
    expect(requests.length).toBe(2);
    expect(requests[0]?.range).toBeNull();
    expect(requests[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    const record = agentState(dataDir).ledger?.blobs[delta];
    expect(record?.fetched).toBe(record?.done);
    expect(world.proxy.served.get(deltaOf(3).digest)).toBeUndefined();
  }, 90_000);

  it('refuses a delta for the wrong base in the decoder and falls back to the full layer', async () => {
    await readyDelta(4);
    // The bases the device holds, in the wrong order: base 0 is not what the delta was built on.
    world.proxy.rewriteTarget = async (target) => {
      for (const layer of target.layers as { download: { kind: string; bases: string[] } | null }[])
        if (layer.download?.kind === 'delta') layer.download.bases = [...layer.download.bases].reverse();
      return world.resignTarget(target);
    };
    try {
      await world.setTarget(uuid, releases[4]!.id);
      await world.reported(uuid, 'running', releases[4]!.id, 60_000).catch(explain);
    } finally {
      world.proxy.rewriteTarget = null;
    }
    const fallback = agent!
      .lines()
      .filter((l) => l.msg === 'download.fallback')
      .pop();
    expect(String(fallback?.reason)).toMatch(/not the layer this delta was built against/);
    expect(world.proxy.served.get(deltaOf(4).digest)).toBe(deltaOf(4).size);
  }, 90_000);

  it('rolls back to the old containers when the new ones fail their health check', async () => {
    await world.setTarget(uuid, releases[5]!.id);
    const device = await world.reported(uuid, 'rolled_back', releases[5]!.id, 60_000).catch(explain);
    expect(device.report?.error).toMatch(/exit/);
    const managed = await world.engine.managed();
    expect(managed).toHaveLength(1);
    expect(managed[0]?.State).toBe('running');
    expect(managed[0]?.Labels['io.ferry.release']).toBe(releases[4]!.id);
    // It does not retry the rolled-back release on the next poll.
    await new Promise((r) => setTimeout(r, 4000));
    expect((await runningReleases(world.engine)).running).toEqual([releases[4]!.id]);
    expect(agentState(dataDir).journal?.rejected?.releaseId).toBe(releases[5]!.id);
    await until('agent still alive', () => (agent!.child.exitCode === null ? true : undefined));
  }, 90_000);

  it("rolls back on the engine's health status when the image has a failing HEALTHCHECK", async () => {
    // An image with a health check, made by the engine itself: v4 committed with HEALTHCHECK.
    const created = await world.engine.api<{ Id: string }>('POST', '/containers/create?name=hc-source', {
      Image: releases[4]!.services[0]!.configDigest,
      HostConfig: { NetworkMode: 'none' },
    });
    const change = encodeURIComponent(
      'HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD ["/bin/false"]',
    );
    const committed = await world.engine.api<{ Id: string }>(
      'POST',
      `/commit?container=${created.body.Id}&repo=app&tag=6&changes=${change}`,
    );
    expect(committed.status).toBe(201);
    await world.engine.api('DELETE', `/containers/${created.body.Id}?force=1`);
    const archive = join(world.work, 'app-6.docker.tar');
    execFileSync('sh', [
      '-c',
      `curl -sf --unix-socket ${world.engine.socket} 'http://engine/v1.41/images/app:6/get' -o ${archive}`,
    ]);
    await world.engine.api('DELETE', '/images/app:6?force=1');
    releases[6] = await world.push(archive, 6);
    await world.setTarget(uuid, releases[6].id);
    const device = await world.reported(uuid, 'rolled_back', releases[6].id, 90_000).catch(explain);
    expect(device.report?.error).toMatch(/unhealthy/);
    const managed = await world.engine.managed();
    expect(managed).toHaveLength(1);
    expect(managed[0]?.State).toBe('running');
    expect(managed[0]?.Labels['io.ferry.release']).toBe(releases[4]!.id);
  }, 120_000);

  it('survives a disk that fills in the middle of an update: deferred, then finished once there is room', async () => {
    // Release 7, a delta from the running v4, on a link slow enough to fill the disk meanwhile.
    releases[7] = await world.push(images.archive('7'), 7);
    await world.requestDeltas(releases[7].id, releases[4]!.id);
    const delta = await readyDelta(7);
    const filler = join(dataDir, 'filler');
    world.proxy.throttle = 100;
    try {
      await world.setTarget(uuid, releases[7].id);
      await world.reported(uuid, 'downloading', releases[7].id, 30_000).catch(explain);
      // Preflight passed; now the disk fills up (dd stops at ENOSPC).
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M'], { stdio: 'ignore' });
      } catch {
        // "No space left on device" is the point
      }
      const deferred = await world.reported(uuid, 'deferred', releases[7].id, 60_000).catch(explain);
      expect(deferred.report?.error).toMatch(/disk/);
      // The write that hit the full disk was reported as such (ENOSPC), not a crash.
      await agent!.waitFor(
        'ENOSPC report',
        (l) => l.msg === 'reported' && typeof l.error === 'string' && /disk full/.test(l.error),
        30_000,
      );
      expect(agent!.child.exitCode).toBeNull();
      expect((await runningReleases(world.engine)).running).toEqual([releases[4]!.id]);
    } finally {
      world.proxy.throttle = 0;
      rmSync(filler, { force: true });
    }
    await world.reported(uuid, 'running', releases[7].id, 60_000).catch(explain);
    expect((await runningReleases(world.engine)).running).toEqual([releases[7].id]);
    const record = agentState(dataDir).ledger?.blobs[delta];
    expect(record?.complete).toBe(true);
  }, 180_000);

  it('refuses a valid delta that rebuilds another layer than the one asked for, and installs the full layer', async () => {
    // The device runs v7. Two genuine deltas from v7: to v8 (what it will ask for) and to v3.
    releases[8] = await world.push(images.archive('8'), 8);
    await world.requestDeltas(releases[8].id, releases[7]!.id);
    await world.requestDeltas(releases[3]!.id, releases[7]!.id);
    await readyDelta(8);
    const v3 = releases[3]!.services[0]!.layers[1]!;
    const v8 = releases[8].services[0]!.layers[1]!;
    const other = (await world.deltasSettled(releases[3]!.id, 2)).find(
      (d) => d.target === v3.diffId && d.bases.includes(releases[7]!.services[0]!.layers[1]!.diffId),
    );
    expect(other?.state).toBe('ready');
    // Offered for v8's app layer, the v7→v3 delta: valid, signed by nothing, and for another layer.
    world.proxy.rewriteTarget = async (target) => {
      for (const layer of target.layers as {
        diffId: string;
        download: { kind: string; digest: string; size: number; bases: string[] } | null;
      }[])
        if (layer.diffId === v8.diffId && layer.download?.kind === 'delta') {
          layer.download.digest = other!.digest!;
          layer.download.size = other!.size!;
          layer.download.bases = other!.bases;
        }
      return world.resignTarget(target);
    };
    try {
      await world.setTarget(uuid, releases[8].id);
      await world.reported(uuid, 'running', releases[8].id, 90_000).catch(explain);
    } finally {
      world.proxy.rewriteTarget = null;
    }
    const fallback = agent!
      .lines()
      .filter((l) => l.msg === 'download.fallback')
      .pop();
    expect(String(fallback?.reason)).toContain(`delta rebuilds ${v3.diffId}`);
    expect(String(fallback?.reason)).toContain(`not the layer asked for (${v8.diffId}`);
    // The other layer was never stored under v8's name: the full layer was fetched and checked.
    expect(world.proxy.served.get(other!.digest!)).toBe(other!.size);
    expect(world.proxy.served.get(v8.gzipDigest)).toBe(v8.gzipSize);
    expect((await runningReleases(world.engine)).running).toEqual([releases[8].id]);
  }, 180_000);

  it('downloads in full a layer the engine lost after the target said the device held it', async () => {
    // v9 is v7's image plus one layer. The device runs v8 and keeps v7's image as its delta base, so
    // the target offers no download for v7's app layer: only v9's own layer travels.
    releases[9] = await world.push(images.archive('9'), 9);
    const [, lost, own] = releases[9].services[0]!.layers;
    expect(lost!.diffId).toBe(releases[7]!.services[0]!.layers[1]!.diffId);
    world.proxy.throttle = 1000;
    try {
      await world.setTarget(uuid, releases[9].id);
      await world.reported(uuid, 'downloading', releases[9].id, 60_000).catch(explain);
      expect(agentState(dataDir).journal?.update?.layers.find((l) => l.diffId === lost!.diffId)).toEqual(
        expect.objectContaining({ download: null }),
      );
      // While v9's layer downloads, v7's image goes (an operator's docker rmi, a half-finished prune).
      const removed = await world.engine.api(
        'DELETE',
        `/images/${releases[7]!.services[0]!.configDigest}?force=1`,
      );
      expect(removed.status).toBe(200);
    } finally {
      world.proxy.throttle = 0;
    }
    await world.reported(uuid, 'running', releases[9].id, 120_000).catch(explain);
    expect((await runningReleases(world.engine)).running).toEqual([releases[9].id]);
    const fallback = agent!
      .lines()
      .filter((l) => l.msg === 'download.fallback')
      .pop();
    expect(fallback).toEqual(
      expect.objectContaining({ diffId: lost!.diffId, reason: 'the engine lost the layer' }),
    );
    // The lost layer came back whole, by the gzip copy the signed manifest names; v9's own layer once.
    expect(world.proxy.served.get(lost!.gzipDigest)).toBe(lost!.gzipSize);
    expect(world.proxy.served.get(own!.gzipDigest)).toBe(own!.gzipSize);
    const image = await world.engine.api<{ RootFS: { Layers: string[] } }>(
      'GET',
      `/images/${releases[9].services[0]!.configDigest}/json`,
    );
    expect(image.body.RootFS.Layers).toEqual(releases[9].services[0]!.layers.map((l) => l.diffId));
    expect(agent!.lines().some((l) => l.code === 'BASE_MISSING')).toBe(false);
  }, 240_000);

  it('replaces, never keeps, a container the engine created but never started (a create finished after a killed agent)', async () => {
    // The device runs v9 and keeps v8's image. A create of v8's container, asked for by an agent killed
    // at that instant, finished in the engine after the restarted agent had undone that swap: it
    // carries every label and the very name the agent would give v8's container now.
    const v8 = releases[8]!;
    const [spec] = releaseSpecs(v8.manifest, null, 'none');
    const created = await world.engine.api<{ Id: string }>(
      'POST',
      `/containers/create?name=${spec!.name}`,
      spec!.body,
    );
    expect(created.status).toBe(201);
    await world.setTarget(uuid, v8.id, true);
    await world.reported(uuid, 'running', v8.id, 60_000).catch(explain);
    const managed = await world.engine.managed();
    expect(managed.map((c) => [c.State, c.Labels['io.ferry.release']])).toEqual([['running', v8.id]]);
    expect(managed[0]!.Id).not.toBe(created.body.Id);
  }, 120_000);
});
