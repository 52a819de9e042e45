import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IClientOptions, MqttClient, connect, connectAsync } from 'mqtt';
import { Device, Release } from '@ferry/protocol';
import { dockerArchive, gnuTarLayer } from './hostile-archives';
import { TestServer } from './test-server';

/** Anything that answers the Ferry API: an in-process test server or a server process. */
type Api = Pick<TestServer, 'api'>;

export interface TestFleet {
  id: string;
  slug: string;
  provisioningKey: string;
}

export interface TestDevice {
  uuid: string;
  apiKey: string;
  fleetId: string;
}

/** A fleet with a provisioning key, through the API. */
export async function createFleet(server: Api, name: string): Promise<TestFleet> {
  const fleet = (await (
    await server.api('/v1/fleets', { method: 'POST', json: { name, arch: 'amd64' } })
  ).json()) as {
    id: string;
    slug: string;
  };
  const key = (await (
    await server.api(`/v1/fleets/${fleet.slug}/provisioning-keys`, { method: 'POST', json: {} })
  ).json()) as { key: string };
  return { ...fleet, provisioningKey: key.key };
}

/** Registers a device like an agent does. */
export async function registerDevice(server: Api, fleet: TestFleet): Promise<TestDevice> {
  const response = await server.api('/v1/device/register', {
    method: 'POST',
    json: { provisioningKey: fleet.provisioningKey },
    token: null,
  });
  if (response.status !== 201) throw new Error(`registration failed: ${response.status}`);
  const device = (await response.json()) as { uuid: string; apiKey: string };
  return { uuid: device.uuid, apiKey: device.apiKey, fleetId: fleet.id };
}

/** Pushes a small one-layer release made with GNU tar. */
export async function pushRelease(server: Api, fleet: TestFleet, content: string): Promise<Release> {
  const work = mkdtempSync(join(tmpdir(), 'ferry-mqtt-release-'));
  try {
    const archive = await dockerArchive([gnuTarLayer(work, { 'app/version.txt': content })], {
      repoTag: 'app:1',
    });
    const response = await server.api(`/v1/fleets/${fleet.slug}/releases`, {
      method: 'POST',
      body: archive,
      headers: { 'content-type': 'application/x-tar' },
    });
    if (response.status !== 201)
      throw new Error(`release push failed: ${response.status} ${await response.text()}`);
    return (await response.json()) as Release;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Sets a device's target release through the API, which publishes its retained notice; the status. */
export async function setTarget(server: Api, uuid: string, releaseId: string): Promise<number> {
  return (await server.api(`/v1/devices/${uuid}/target`, { method: 'PUT', json: { releaseId } })).status;
}

export async function getDevice(server: Api, uuid: string): Promise<Device> {
  return (await (await server.api(`/v1/devices/${uuid}`)).json()) as Device;
}

/** Connects as a device (client id = UUID, persistent session unless told otherwise). */
export async function connectDevice(
  url: string,
  device: { uuid: string; apiKey: string },
  options: IClientOptions = {},
): Promise<MqttClient> {
  return connectAsync(url, {
    clientId: device.uuid,
    username: device.uuid,
    password: device.apiKey,
    protocolVersion: 4,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...options,
  });
}

/** The CONNACK return code a connection attempt is refused with (0 when accepted, -1 when cut off). */
export function connectCode(url: string, options: IClientOptions): Promise<number> {
  return new Promise((resolve) => {
    const client = connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    const finish = (code: number): void => {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      resolve(code);
    };
    client.once('connect', () => finish(0));
    client.once('error', (error) => finish((error as { code?: number }).code ?? -1));
    client.once('close', () => finish(-1));
  });
}

/** Resolves with the next message on `topic` (or rejects after `ms`). */
export function nextMessage(client: MqttClient, topic: string, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${ms} ms`));
    }, ms);
    const onMessage = (t: string, payload: Buffer): void => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(payload);
    };
    client.on('message', onMessage);
  });
}

/** Polls until `check` returns a value other than undefined. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  ms = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The SUBACK return codes for `filters` (0x80 = refused), whether or not mqtt.js calls it an error. */
export async function subscribeCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw error;
    return granted;
  }
}
