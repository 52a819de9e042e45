import http from 'node:http';
import https from 'node:https';
import { Readable, Transform, pipeline } from 'node:stream';

import { createParser } from 'eventsource-parser';
import type { ErrorBody } from '@ferry/protocol';

import { InputError, NotLoggedInError, ServerRefusedError, UnreachableError } from './errors';

/** How long an upload may go without sending or receiving a byte. */
const UPLOAD_IDLE_MS = 5 * 60_000;

export type Query = Record<string, string | number | boolean | undefined>;

const CONNECTION_PROBLEMS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed while sending',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  CERT_HAS_EXPIRED: 'TLS certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed TLS certificate',
};

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.cause?.code ?? e?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Most bytes one server-sent event may hold before the stream is given up as broken. */
const MAX_EVENT_BYTES = 1024 * 1024;

/** A network failure as one line naming the server and what went wrong. */
export function unreachable(err: unknown, url: URL): UnreachableError {
  if ((err as Error | null)?.name === 'TimeoutError') {
    return new UnreachableError(`no answer from ${url.origin} in time`);
  }
  const code = errorCode(err);
  const cause = (err as { cause?: { message?: unknown } } | null)?.cause?.message;
  const what =
    (code && CONNECTION_PROBLEMS[code]) ??
    (typeof cause === 'string' ? cause : ((err as Error | null)?.message ?? String(err)));
  return new UnreachableError(`cannot reach ${url.origin}: ${what}${code ? ` (${code})` : ''}`);
}

/** Turns an error answer into the error with the documented exit code, keeping the server's words. */
export function answerError(status: number, body: unknown, fallback: string): Error {
  const b = (body instanceof NotJson ? {} : (body ?? {})) as Partial<ErrorBody>;
  const reason = typeof b.error === 'string' ? b.error : fallback;
  const message =
    typeof b.message === 'string' && b.message
      ? b.message
      : body instanceof NotJson
        ? 'the answer is not a Ferry error (a proxy, or not a Ferry server?)'
        : reason;
  const line = `${status} ${reason}: ${message}`;
  if (status === 401 || status === 403) {
    return new NotLoggedInError(`the server refused the token (${line})`);
  }
  if (status >= 400 && status < 500) return new ServerRefusedError(line, status, body);
  return new UnreachableError(`the server failed (${line})`, true);
}

/** A body that is not JSON: an HTML page from a proxy, or a URL that is not a Ferry server. */
class NotJson {
  constructor(readonly text: string) {}
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return new NotJson(text);
  }
}

/** A 2xx answer must be JSON; anything else means the URL does not lead to a Ferry API. */
function expectJson(body: unknown, url: URL): unknown {
  if (body instanceof NotJson) {
    throw new UnreachableError(
      `the answer from ${url.origin}${url.pathname} is not JSON: is this a Ferry server?`,
      true,
    );
  }
  return body;
}

export interface UploadOptions {
  contentType: string;
  /** Byte count when known (a file); unknown for stdin, sent chunked. */
  size?: number;
  onProgress?: (bytes: number) => void;
}

/** The operator API of one Ferry server, with the admin token. */
export class FerryClient {
  readonly base: URL;

  constructor(
    url: string,
    private readonly token: string | null,
    /** How long a JSON request may take. @defaultValue 60 s */
    private readonly timeoutMs = 60_000,
  ) {
    this.base = parseServerUrl(url);
  }

  /** The absolute URL of an API path, keeping any path prefix of the base URL. */
  url(path: string, query: Query = {}): URL {
    const base = this.base.href.endsWith('/') ? this.base.href : `${this.base.href}/`;
    const url = new URL(path.replace(/^\//, ''), base);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      accept: 'application/json',
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      ...extra,
    };
  }

  async request<T>(
    method: string,
    path: string,
    options: { query?: Query; json?: unknown } = {},
  ): Promise<T> {
    const url = this.url(path, options.query);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: this.headers(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
        body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw unreachable(err, url);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw unreachable(err, url);
    }
    const body = parseBody(text);
    if (!response.ok) throw answerError(response.status, body, response.statusText);
    return expectJson(body, url) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
  }

  post<T>(path: string, json: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, { json });
  }

  put<T>(path: string, json: unknown = {}): Promise<T> {
    return this.request<T>('PUT', path, { json });
  }

  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }

  /**
   * Streams `source` as the request body with backpressure, never holding it whole. A failure to read
   * the source is an input error; an answer the server gives before the upload ends (it refused the
   * archive early) wins over the broken pipe that follows it.
   */
  upload<T>(path: string, query: Query, source: Readable, options: UploadOptions): Promise<T> {
    const url = this.url(path, query);
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let sourceError: Error | undefined;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
      };
      const request = transport.request(url, {
        method: 'POST',
        headers: this.headers({
          'content-type': options.contentType,
          ...(options.size !== undefined ? { 'content-length': String(options.size) } : {}),
        }),
      });
      // No byte either way for this long: the server or the network is stuck (a push has no total timeout).
      request.setTimeout(UPLOAD_IDLE_MS, () =>
        request.destroy(Object.assign(new Error('no progress'), { name: 'TimeoutError' })),
      );
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (err) => settle(() => reject(unreachable(err, url))));
        response.on('end', () => {
          const body = parseBody(Buffer.concat(chunks).toString('utf8'));
          const status = response.statusCode ?? 0;
          settle(() => {
            try {
              if (status < 200 || status >= 300)
                throw answerError(status, body, response.statusMessage ?? 'error');
              resolve(expectJson(body, url) as T);
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
          // An early refusal: stop sending the rest of the archive nobody will read (the pipeline
          // below then destroys the source and the meter too).
          request.destroy();
        });
      });
      request.on('error', (err) => {
        // Give an early error answer already on its way a moment to be read.
        setTimeout(
          () =>
            settle(() =>
              reject(
                sourceError
                  ? new InputError(`cannot read the archive: ${sourceError.message}`)
                  : unreachable(err, url),
              ),
            ),
          sourceError ? 0 : 200,
        );
      });
      let sent = 0;
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          sent += chunk.length;
          options.onProgress?.(sent);
          callback(null, chunk);
        },
      });
      source.on('error', (err) => (sourceError = err));
      // pipeline destroys every stage when one fails: a source error aborts the request, whose
      // 'error' handler above reports it; a refused request stops the source.
      pipeline(source, meter, request, () => undefined);
    });
  }

  /**
   * Opens a server-sent event stream and calls `onEvent` for each event until `signal` aborts or the
   * server ends the stream.
   */
  async events(
    path: string,
    query: Query,
    onEvent: (type: string, data: string) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const url = this.url(path, query);
    let response: Response;
    try {
      response = await fetch(url, { headers: this.headers({ accept: 'text/event-stream' }), signal });
    } catch (err) {
      if (signal.aborted) return;
      throw unreachable(err, url);
    }
    if (!response.ok || !response.body) {
      throw answerError(response.status, parseBody(await response.text()), response.statusText);
    }
    // eventsource-parser follows the SSE spec (CR, LF and CRLF line ends, one optional space after
    // the colon, comments, ids) and bounds what one unfinished event may buffer.
    let oversized = false;
    const parser = createParser({
      onEvent: (event) => onEvent(event.event ?? 'message', event.data),
      onError: (error) => {
        if (error.type === 'max-buffer-size-exceeded') oversized = true;
      },
      maxBufferSize: MAX_EVENT_BYTES,
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (oversized) throw new Error(`the event stream sent an event over ${MAX_EVENT_BYTES} bytes`);
      }
    } catch (err) {
      if (signal.aborted) return;
      throw unreachable(err, url);
    }
  }
}

/** Checks a server URL given by the operator. */
export function parseServerUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InputError(`not a URL: ${url} (expected e.g. http://127.0.0.1:8080)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InputError(`not an http(s) URL: ${url}`);
  }
  return parsed;
}
