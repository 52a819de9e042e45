import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { MAX_TARGET_BYTES } from '@ferry/protocol/wire';
import type { DeviceStateMessage, DeviceVariables, RegisteredDevice } from '@ferry/protocol/wire';
import { HttpStatusError } from './errors';
import { parseDeviceVariables } from './variables';

/** A URL longer than this is sent as `POST /v1/device/target` instead of a query string. */
const MAX_QUERY = 6000;
const TIMEOUT_MS = 30_000;

/** Opens one HTTP(S) request and resolves with the response head; the body is the caller's to read. */
export function openRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer; timeoutMs?: number } = {},
): Promise<IncomingMessage> {
  const target = new URL(url);
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body ? { 'content-length': String(options.body.length) } : {}),
          ...options.headers,
        },
      },
      resolve,
    );
    // An idle socket (a link that went quiet) fails the request instead of hanging forever.
    req.setTimeout(options.timeoutMs ?? TIMEOUT_MS, () =>
      req.destroy(new Error(`no data from ${target.host} for ${(options.timeoutMs ?? TIMEOUT_MS) / 1000}s`)),
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Reads a whole answer; one longer than `maxBytes` is cut off with an error (a server sending endless data). */
export async function readBody(res: IncomingMessage, maxBytes = Infinity): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      res.destroy();
      throw new Error(`the answer is longer than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The device API of the Ferry server. */
export class ServerApi {
  constructor(
    readonly baseUrl: string,
    private apiKey: string | null = null,
  ) {}

  setApiKey(apiKey: string): void {
    this.apiKey = apiKey;
  }

  private async json<T>(
    method: string,
    path: string,
    body?: unknown,
    auth = true,
  ): Promise<{ status: number; body: T }> {
    const res = await openRequest(`${this.baseUrl}${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(auth && this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
      },
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    });
    const text = await readBody(res, MAX_TARGET_BYTES);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300)
      throw new HttpStatusError(`${method} ${path}: ${status} ${text.slice(0, 500)}`, status);
    return { status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  /** `POST /v1/device/register`: 201 created, 200 when the same registration is repeated. */
  async register(input: {
    provisioningKey: string;
    uuid: string;
    apiKey: string;
    name?: string;
    agentVersion: string;
  }): Promise<RegisteredDevice> {
    return (await this.json<RegisteredDevice>('POST', '/v1/device/register', input, false)).body;
  }

  /** `GET /v1/device/me`: checks the key still works. */
  async me(): Promise<{ uuid: string }> {
    return (await this.json<{ uuid: string }>('GET', '/v1/device/me')).body;
  }

  /**
   * The device's target, telling the server which layers the engine holds: the parsed JSON as received,
   * for `verifySignedTarget` to check before anything uses it.
   */
  async target(have: string[]): Promise<unknown> {
    const query = `/v1/device/target?have=${have.join(',')}`;
    if (query.length <= MAX_QUERY) return (await this.json<unknown>('GET', query)).body;
    return (await this.json<unknown>('POST', '/v1/device/target', { have })).body;
  }

  /**
   * `GET /v1/device/variables` with `If-None-Match` of the version held: the device's configuration
   * variables, or null when they did not change (304).
   */
  async variables(heldVersion: number | null): Promise<DeviceVariables | null> {
    const path = '/v1/device/variables';
    const res = await openRequest(`${this.baseUrl}${path}`, {
      headers: {
        accept: 'application/json',
        authorization: `Bearer ${this.apiKey ?? ''}`,
        ...(heldVersion !== null ? { 'if-none-match': `"${heldVersion}"` } : {}),
      },
    });
    const text = await readBody(res, MAX_TARGET_BYTES);
    const status = res.statusCode ?? 0;
    if (status === 304) return null;
    if (status !== 200) throw new HttpStatusError(`GET ${path}: ${status} ${text.slice(0, 500)}`, status);
    return parseDeviceVariables(text);
  }

  /** `POST /v1/device/volume-purges/{volume}`: what the device did with a purge its target carried. */
  async volumePurged(
    volume: string,
    outcome: { outcome: 'purged' | 'refused'; error?: string },
  ): Promise<void> {
    await this.json('POST', `/v1/device/volume-purges/${encodeURIComponent(volume)}`, outcome);
  }

  /** `POST /v1/device/state`: the HTTP fallback of the MQTT state topic. */
  async reportState(message: DeviceStateMessage): Promise<void> {
    await this.json('POST', '/v1/device/state', message);
  }

  /** Until when blobs are fetched through the server because a redirect to the object store failed. */
  private proxyUntil = 0;

  /**
   * `GET /v1/blobs/{digest}` from `offset` on, `If-Range` with the blob's ETag. The agent accepts a
   * redirect to the object store (a short-lived presigned URL, maybe behind a CDN): it follows it
   * without its API key, asking for the same range (the object under a digest never changes, so no
   * `If-Range`). When the store cannot be reached or refuses the URL, the same request goes through
   * the server (proxied) instead, and does so for the next {@link PROXY_FALLBACK_MS}.
   */
  async openBlob(digest: string, offset: number): Promise<IncomingMessage> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey ?? ''}` };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = `"${digest}"`;
    }
    const url = `${this.baseUrl}/v1/blobs/${digest}`;
    if (Date.now() < this.proxyUntil) return openRequest(url, { headers });
    const res = await openRequest(url, { headers: { ...headers, 'ferry-accept-redirect': '1' } });
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || !location) return res;
    res.resume();
    try {
      const stored = await openRequest(new URL(location, url).toString(), {
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      });
      const status = stored.statusCode ?? 0;
      if (status === 200 || status === 206) return stored;
      stored.resume();
    } catch {
      // unreachable store: fall back to the server below
    }
    this.proxyUntil = Date.now() + PROXY_FALLBACK_MS;
    return openRequest(url, { headers });
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** How long blobs go through the server after a redirect to the object store failed. */
export const PROXY_FALLBACK_MS = 10 * 60 * 1000;
