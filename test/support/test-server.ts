import { mkdtempSync, rmSync } from 'node:fs';
import { Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { FerryConfig, loadServerConfig } from '../../apps/server/src/config/config';
import { BrokerService } from '../../apps/server/src/broker/broker.service';
import { createServer } from '../../apps/server/src/server.factory';
import { freshPostgresDatabase } from './postgres';
import { deleteQueueKeys, deleteRedisKeys, testQueuePrefix, testRedisPrefix } from './redis-keys';

export type DatabaseKind = 'sqlite' | 'postgres';
export const DATABASE_KINDS: DatabaseKind[] = ['sqlite', 'postgres'];

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/** A real Ferry server on a random port, with its own data folder and database. */
export interface TestServer {
  app: INestApplication;
  config: FerryConfig;
  url: string;
  dataDir: string;
  /** The port of the embedded MQTT broker (null with MQTT_URL). */
  mqttPort: number | null;
  /** fetch against the server with the admin token unless `token` is given (null: no header). */
  api: (path: string, init?: RequestInit & { token?: string | null; json?: unknown }) => Promise<Response>;
  close: () => Promise<void>;
}

/** fetch against a Ferry server: the admin token unless `token` says otherwise, JSON bodies by `json`. */
export function apiClient(url: string): TestServer['api'] {
  return async (path, init = {}) => {
    const { token = ADMIN_TOKEN, json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (token !== null) headers.set('authorization', `Bearer ${token}`);
    if (json !== undefined) headers.set('content-type', 'application/json');
    return fetch(`${url}${path}`, {
      ...rest,
      headers,
      body: json !== undefined ? JSON.stringify(json) : rest.body,
      ...(rest.body && typeof rest.body !== 'string' && !(rest.body instanceof Uint8Array)
        ? { duplex: 'half' }
        : {}),
    });
  };
}

export async function startTestServer(
  kind: DatabaseKind = 'sqlite',
  env: Record<string, string> = {},
  options: {
    /** Leave REDIS_PREFIX and FERRY_QUEUE_PREFIX unset: the server names them after its install id. */
    installNamespaces?: boolean;
  } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ferry-server-'));
  const postgres = kind === 'postgres' ? await freshPostgresDatabase() : null;
  // Its own key prefix unless the test shares one between servers on purpose (and cleans it).
  // Its own queue too, deleted at close (its data folder goes with it, so nothing can reuse the queue);
  // a queue the test names is the test's to clean.
  const ownKeys = env.REDIS_PREFIX === undefined;
  const ownQueue = env.FERRY_QUEUE_PREFIX === undefined;
  const config = await loadServerConfig({
    ...(ownKeys && !options.installNamespaces ? { REDIS_PREFIX: testRedisPrefix() } : {}),
    ...(ownQueue && !options.installNamespaces ? { FERRY_QUEUE_PREFIX: testQueuePrefix('server') } : {}),
    DATA_DIR: dataDir,
    FERRY_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: '0',
    MQTT_PORT: '0',
    LOG_LEVEL: 'silent',
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...(postgres ? { DATABASE_URL: postgres.url } : {}),
    ...env,
  });
  const app = await createServer(config, { quiet: true });
  await app.listen(0, '127.0.0.1');
  // Tests block their event loop for seconds building fixtures with real tools between requests.
  // fetch then reuses a pooled keep-alive connection the server closed meanwhile (Node's default
  // 5 s), and the request is reset: keep idle connections open far longer than any such pause.
  (app.getHttpServer() as Server).keepAliveTimeout = 120_000;
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const url = `http://127.0.0.1:${port}`;
  const api = apiClient(url);
  return {
    app,
    config,
    url,
    dataDir,
    mqttPort: app.get(BrokerService, { strict: false }).port(),
    api,
    close: async () => {
      // Idle keep-alive sockets of child processes (the CLI) would hold close() for up to 120 s.
      (app.getHttpServer() as Server).closeIdleConnections();
      const closing = app.close();
      (app.getHttpServer() as Server).closeAllConnections();
      await closing;
      await postgres?.drop();
      if (ownKeys) await deleteRedisKeys(config.redisUrl, config.redisPrefix);
      if (ownQueue) await deleteQueueKeys(config.redisUrl, config.queuePrefix);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
