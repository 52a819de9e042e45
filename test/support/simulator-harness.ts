import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device, FerryEvent, Release, RolloutView } from '@ferry/protocol';
import { loadServerConfig } from '../../apps/server/src/config/config';
import { createServer } from '../../apps/server/src/server.factory';
import {
  TEST_REDIS_URL,
  deleteQueueKeys,
  deleteRedisKeys,
  testQueuePrefix,
  testRedisPrefix,
} from './redis-keys';
import { Simulator } from '../../devices/simulator/src';
import type { TestFleet } from './mqtt-devices';
import { freshPostgresDatabase } from './postgres';
import { ADMIN_TOKEN, DatabaseKind, TestServer, apiClient } from './test-server';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * What a rollout server needs to come back after a restart: the same folder, ports and Redis keys (and,
 * on PostgreSQL, the same database).
 */
export interface ServerPlace {
  dataDir: string;
  port: number;
  mqttPort: number;
  env: Record<string, string>;
  /** Drops the place's own PostgreSQL database (`remove()` of its last server calls it). */
  dropDatabase?: () => Promise<void>;
}

/** A place on `kind`: on PostgreSQL a fresh database of its own, in `DATABASE_URL`. */
export async function newPlace(
  env: Record<string, string> = {},
  kind: DatabaseKind = 'sqlite',
): Promise<ServerPlace> {
  const postgres = kind === 'postgres' ? await freshPostgresDatabase() : null;
  return {
    ...(postgres && { dropDatabase: postgres.drop }),
    dataDir: mkdtempSync(join(tmpdir(), 'ferry-rollouts-')),
    port: await freePort(),
    mqttPort: await freePort(),
    env: {
      // Own Redis keys and queue: tests running side by side do not share leases, events or delta jobs.
      REDIS_PREFIX: testRedisPrefix(),
      FERRY_QUEUE_PREFIX: testQueuePrefix('rollouts'),
      FERRY_ROLLOUT_TICK_MS: '200',
      FERRY_STATE_FLUSH_MS: '100',
      ...(postgres && { DATABASE_URL: postgres.url }),
      ...env,
    },
  };
}

/**
 * A real Ferry server on fixed ports in `place`: closing it keeps the data folder and its Redis keys
 * and queue, so a second one started on the same place carries on (restart tests). `remove()`, after
 * the last close and after every worker of the place stopped, deletes the folder and the Redis keys.
 */
export async function startServerAt(
  place: ServerPlace,
): Promise<TestServer & { remove: () => Promise<void> }> {
  const config = await loadServerConfig({
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
    remove: async () => {
      rmSync(place.dataDir, { recursive: true, force: true });
      const redisUrl = place.env.REDIS_URL ?? TEST_REDIS_URL;
      if (place.env.REDIS_PREFIX) await deleteRedisKeys(redisUrl, place.env.REDIS_PREFIX);
      if (place.env.FERRY_QUEUE_PREFIX) await deleteQueueKeys(redisUrl, place.env.FERRY_QUEUE_PREFIX);
      await place.dropDatabase?.();
    },
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

/** Reads `GET /v1/events?fleet=` as an SSE client would, keeping every event. */
export function collectEvents(
  server: Pick<TestServer, 'api'>,
  fleetId: string,
): { received: () => FerryEvent[]; stop: () => void } {
  const events: FerryEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    const response = await server.api(`/v1/events?fleet=${fleetId}`, { signal: controller.signal });
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer
          .slice(0, end)
          .split('\n')
          .find((line) => line.startsWith('data: '));
        buffer = buffer.slice(end + 2);
        if (data) events.push(JSON.parse(data.slice(6)) as FerryEvent);
      }
    }
  })().catch(() => undefined);
  return { received: () => events, stop: () => controller.abort() };
}

/** Simulated devices of `fleet` running `release`, tagged `tags` (none when empty), once the server lists them on it. */
export async function simulatedDevicesOn(
  server: TestServer,
  fleet: TestFleet,
  release: Release,
  count: number,
  namePrefix: string,
  tags: Record<string, string>,
  started: Simulator[],
): Promise<Simulator> {
  const simulator = await Simulator.start({
    url: server.url,
    mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
    provisioningKey: fleet.provisioningKey,
    count,
    namePrefix,
    stepMs: 30,
    running: { id: release.id, layers: layersOf(release) },
  });
  started.push(simulator);
  if (Object.keys(tags).length > 0)
    for (const device of simulator.devices)
      await json(
        await server.api(`/v1/devices/${device.uuid}/tags`, { method: 'POST', json: { tags } }),
        201,
      );
  await until(
    async () => {
      const listed = await json<Device[]>(await server.api(`/v1/fleets/${fleet.slug}/devices`));
      return simulator.devices.every((s) =>
        listed.some((d) => d.uuid === s.uuid && d.releaseId === release.id),
      )
        ? true
        : undefined;
    },
    20_000,
    `${count} ${namePrefix} devices reporting ${release.id}`,
  );
  return simulator;
}
