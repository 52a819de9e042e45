import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeltaRecord, Device, Release, UnsignedTarget, signTarget } from '@ferry/protocol';
import { TargetKeysService } from '../../apps/server/src/target-keys/target-keys.service';
import { AgentProcess, agentState, startAgent, until } from './agent-process';
import { AgentProxy, startAgentProxy } from './agent-proxy';
import { DockerEngine, startDockerEngine } from './docker-engine';
import { TEST_REDIS_URL, deleteQueueKeys, testQueuePrefix } from './redis-keys';
import { TestServer, startTestServer } from './test-server';
import { WorkerProcess, startWorker } from './worker-process';

/** Server + worker + broker + Docker engine + proxy, and helpers to drive an agent through them. */
export interface AgentWorld {
  server: TestServer;
  worker: WorkerProcess;
  engine: DockerEngine;
  proxy: AgentProxy;
  work: string;
  fleet: { slug: string; provisioningKey: string };
  push: (archive: string, version: number) => Promise<Release>;
  /**
   * Pushes a compose release: `compose` (YAML) with these image archives, as a release bundle made by
   * GNU tar (docs/compose.md).
   */
  pushCompose: (compose: string, archives: string[], version: number) => Promise<Release>;
  deltasSettled: (releaseId: string, count: number) => Promise<DeltaRecord[]>;
  requestDeltas: (releaseId: string, from: string) => Promise<DeltaRecord[]>;
  /** `rollback`: the operator asks for an older release on purpose. */
  setTarget: (uuid: string, releaseId: string, rollback?: boolean) => Promise<void>;
  /**
   * Signs a target with the server's current online key, as a server whose key an attacker holds
   * would: for tests that rewrite a target to exercise the checks behind the signature.
   */
  resignTarget: (target: Record<string, unknown>) => Promise<Record<string, unknown>>;
  device: (uuid: string) => Promise<Device>;
  agentEnv: (dataDir: string, extra?: Record<string, string>) => Record<string, string>;
  /** Starts the bundled agent and waits until it has registered; returns its UUID. */
  startAgent: (
    dataDir: string,
    extra?: Record<string, string>,
    launcher?: { file: string; args: string[] },
  ) => Promise<{ agent: AgentProcess; uuid: string }>;
  /** Waits until the device reports `status` for `releaseId` and the agent's journal has no update pending. */
  reported: (uuid: string, status: string, releaseId: string, timeoutMs?: number) => Promise<Device>;
  close: () => Promise<void>;
}

/** `fleet`: more of the fleet's creation body (release keys, for instance); `serverEnv`: the server's. */
export async function startAgentWorld(
  name: string,
  fleet: Record<string, unknown> = {},
  serverEnv: Record<string, string> = {},
): Promise<AgentWorld> {
  const work = mkdtempSync(join(tmpdir(), `ferry-${name}-`));
  const prefix = testQueuePrefix('agent');
  const engine = await startDockerEngine();
  const server = await startTestServer('sqlite', {
    FERRY_QUEUE_PREFIX: prefix,
    FERRY_STATE_FLUSH_MS: '200',
    ...serverEnv,
  });
  const worker = await startWorker({
    DATA_DIR: server.dataDir,
    FERRY_QUEUE_PREFIX: prefix,
    WORKER_LOCK_MS: '2000',
    LOG_LEVEL: 'warn',
  });
  const proxy = await startAgentProxy(server.url);
  const fleetRes = await server.api('/v1/fleets', {
    method: 'POST',
    json: { name, arch: 'amd64', ...fleet },
  });
  const { slug } = (await fleetRes.json()) as { slug: string };
  const key = (await (
    await server.api(`/v1/fleets/${slug}/provisioning-keys`, { method: 'POST', json: {} })
  ).json()) as { key: string };
  const world: AgentWorld = {
    server,
    worker,
    engine,
    proxy,
    work,
    fleet: { slug, provisioningKey: key.key },
    push: async (archive, version) => {
      const res = await server.api(`/v1/fleets/${slug}/releases?version=${version}`, {
        method: 'POST',
        body: readFileSync(archive),
        headers: { 'content-type': 'application/x-tar' },
      });
      if (res.status !== 201) throw new Error(`push v${version}: ${res.status} ${await res.text()}`);
      return (await res.json()) as Release;
    },
    pushCompose: async (compose, archives, version) => {
      const dir = mkdtempSync(join(work, 'bundle-'));
      writeFileSync(join(dir, 'docker-compose.yml'), compose);
      archives.forEach((a, i) => copyFileSync(a, join(dir, `${i}.tar`)));
      execFileSync('tar', [
        '-cf',
        join(dir, 'bundle.tar'),
        '-C',
        dir,
        'docker-compose.yml',
        ...archives.map((_, i) => `${i}.tar`),
      ]);
      const res = await server.api(`/v1/fleets/${slug}/releases?version=${version}`, {
        method: 'POST',
        body: readFileSync(join(dir, 'bundle.tar')),
        headers: { 'content-type': 'application/vnd.ferry.release+tar' },
      });
      rmSync(dir, { recursive: true, force: true });
      if (res.status !== 201) throw new Error(`push v${version}: ${res.status} ${await res.text()}`);
      return (await res.json()) as Release;
    },
    deltasSettled: (releaseId, count) =>
      until(
        `deltas of ${releaseId}`,
        async () => {
          const list = (await (await server.api(`/v1/releases/${releaseId}/deltas`)).json()) as DeltaRecord[];
          return list.length >= count && list.every((d) => ['ready', 'full', 'failed'].includes(d.state))
            ? list
            : undefined;
        },
        120_000,
        250,
      ),
    requestDeltas: async (releaseId, from) => {
      const res = await server.api(`/v1/releases/${releaseId}/deltas`, { method: 'POST', json: { from } });
      if (res.status >= 300)
        throw new Error(`deltas ${from}→${releaseId}: ${res.status} ${await res.text()}`);
      return (await res.json()) as DeltaRecord[];
    },
    setTarget: async (uuid, releaseId, rollback) => {
      const res = await server.api(`/v1/devices/${uuid}/target`, {
        method: 'PUT',
        json: { releaseId, ...(rollback ? { rollback } : {}) },
      });
      if (res.status !== 200) throw new Error(`set target: ${res.status} ${await res.text()}`);
    },
    resignTarget: async (target) => {
      const { current } = await server.app.get(TargetKeysService).signingKeys();
      const { signatures: _old, ...rest } = target;
      return signTarget(rest as unknown as UnsignedTarget, [current.privateKey]) as unknown as Record<
        string,
        unknown
      >;
    },
    device: async (uuid) => (await (await server.api(`/v1/devices/${uuid}`)).json()) as Device,
    agentEnv: (dataDir, extra = {}) => ({
      FERRY_API_URL: proxy.url,
      FERRY_MQTT_URL: `mqtt://127.0.0.1:${server.mqttPort}`,
      FERRY_PROVISIONING_KEY: key.key,
      FERRY_DATA_DIR: dataDir,
      FERRY_ENGINE_SOCKET: engine.socket,
      FERRY_UPDATE_LOCK: join(dataDir, '..', `${name}-updates.lock`),
      FERRY_POLL_INTERVAL_MS: '3000',
      FERRY_HEALTH_GRACE_MS: '1500',
      FERRY_RETRY_BASE_MS: '100',
      FERRY_DOWNLOAD_ATTEMPTS: '3',
      FERRY_NETWORK_MODE: 'none',
      FERRY_STOP_TIMEOUT_S: '1',
      FERRY_MIN_FREE_MEMORY_MB: '1',
      FERRY_DISK_RESERVE_MB: '0',
      ...extra,
    }),
    startAgent: async (dataDir, extra = {}, launcher) => {
      const agent = startAgent(world.agentEnv(dataDir, extra), launcher?.file, launcher?.args);
      await agent.waitFor('agent started', (l) => l.msg === 'agent started', launcher ? 180_000 : 30_000);
      const uuid = agentState(dataDir).credentials?.uuid;
      if (!uuid) throw new Error('no credentials after start');
      return { agent, uuid };
    },
    reported: (uuid, status, releaseId, timeoutMs = 90_000) =>
      until(
        `${uuid} to report ${status} for ${releaseId}`,
        async () => {
          const device = await world.device(uuid);
          return device.status === status && device.report?.releaseId === releaseId ? device : undefined;
        },
        timeoutMs,
        200,
      ),
    close: async () => {
      await proxy.close().catch(() => undefined);
      await worker.kill().catch(() => undefined);
      await server.close().catch(() => undefined);
      await deleteQueueKeys(TEST_REDIS_URL, prefix).catch(() => undefined);
      await engine.stop().catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    },
  };
  return world;
}

/** The managed containers as the test sees them: which release runs, how many, and in what state. */
export async function runningReleases(engine: DockerEngine): Promise<{ running: string[]; all: number }> {
  const managed = await engine.managed();
  return {
    running: managed.filter((c) => c.State === 'running').map((c) => c.Labels['io.ferry.release'] ?? '?'),
    all: managed.length,
  };
}
