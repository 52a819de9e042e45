import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Release, RolloutView } from '@ferry/protocol';
import { loadConfig } from '../../apps/server/src/config/config';
import { createServer } from '../../apps/server/src/server.factory';
import { ADMIN_TOKEN, TestServer, apiClient } from './test-server';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What a rollout server needs to come back after a restart: the same folder, ports and Redis keys. */
export interface ServerPlace {
  dataDir: string;
  port: number;
  mqttPort: number;
  env: Record<string, string>;
}

export async function newPlace(env: Record<string, string> = {}): Promise<ServerPlace> {
  const id = randomBytes(4).toString('hex');
  return {
    dataDir: mkdtempSync(join(tmpdir(), 'ferry-rollouts-')),
    port: await freePort(),
    mqttPort: await freePort(),
    env: {
      // Own Redis keys and queue: tests running side by side do not share leases, events or delta jobs.
      REDIS_PREFIX: `ferry-test-${id}:`,
      FERRY_QUEUE_PREFIX: `rollouts-${id}`,
      FERRY_ROLLOUT_TICK_MS: '200',
      FERRY_STATE_FLUSH_MS: '100',
      ...env,
    },
  };
}

/**
 * A real Ferry server on fixed ports in `place`: closing it keeps the data folder, so a second one
 * started on the same place carries on (restart tests). `remove()` deletes the folder.
 */
export async function startServerAt(place: ServerPlace): Promise<TestServer & { remove: () => void }> {
  const config = loadConfig({
    DATA_DIR: place.dataDir,
    FERRY_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: String(place.port),
    MQTT_PORT: String(place.mqttPort),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ...place.env,
  });
  const app = await createServer(config, { quiet: true });
  await app.listen(place.port, '127.0.0.1');
  const url = `http://127.0.0.1:${place.port}`;
  const api = apiClient(url);
  return {
    app,
    config,
    url,
    dataDir: place.dataDir,
    mqttPort: place.mqttPort,
    api,
    close: async () => {
      await app.close();
    },
    remove: () => rmSync(place.dataDir, { recursive: true, force: true }),
  };
}

export async function json<T>(response: Response, status?: number): Promise<T> {
  const body = await response.text();
  if (status !== undefined && response.status !== status)
    throw new Error(`expected HTTP ${status}, got ${response.status}: ${body}`);
  return JSON.parse(body) as T;
}

export function layersOf(release: Release): string[] {
  return [...new Set(release.services.flatMap((s) => s.layers.map((l) => l.diffId)))];
}

/** Polls every 200 ms until `check` returns a value. */
export async function until<T>(check: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Waits until the rollout satisfies `check`; the error names its last state. */
export async function waitForRollout(
  server: Pick<TestServer, 'api'>,
  id: string,
  check: (rollout: RolloutView) => boolean,
  ms = 30_000,
  what = 'rollout condition',
): Promise<RolloutView> {
  let last: RolloutView | undefined;
  try {
    return await until(
      async () => {
        const response = await server.api(`/v1/rollouts/${id}`);
        if (response.status !== 200) return undefined;
        last = (await response.json()) as RolloutView;
        return check(last) ? last : undefined;
      },
      ms,
      what,
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message}; last seen: ${JSON.stringify({ state: last?.state, reason: last?.reason, batches: last?.batches.map((b) => [b.number, b.state, b.counts]), failures: last?.failures })}`,
    );
  }
}
