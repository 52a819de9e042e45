import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DeviceStateMessage } from '../../../libs/protocol/src/messages';
import type { DeviceTarget } from '../../../libs/protocol/src/device-target';
import type { RegisteredDevice } from '../../../libs/protocol/src/device';
import { HttpStatusError } from './errors';

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

export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
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
    const text = await readBody(res);
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

  /** The device's target, telling the server which layers the engine holds. */
  async target(have: string[]): Promise<DeviceTarget> {
    const query = `/v1/device/target?have=${have.join(',')}`;
    if (query.length <= MAX_QUERY) return (await this.json<DeviceTarget>('GET', query)).body;
    return (await this.json<DeviceTarget>('POST', '/v1/device/target', { have })).body;
  }

  /** `POST /v1/device/state`: the HTTP fallback of the MQTT state topic. */
  async reportState(message: DeviceStateMessage): Promise<void> {
    await this.json('POST', '/v1/device/state', message);
  }

  /** `GET /v1/blobs/{digest}` from `offset` on, `If-Range` with the blob's ETag. */
  async openBlob(digest: string, offset: number): Promise<IncomingMessage> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey ?? ''}` };
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = `"${digest}"`;
    }
    return openRequest(`${this.baseUrl}/v1/blobs/${digest}`, { headers });
  }
}
