import { FERRY_EVENT_TYPES } from '@ferry/protocol/wire';
import type { FerryEvent } from '@ferry/protocol';

const TOKEN_KEY = 'ferry.token';

/** An API error with the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) localStorage.removeItem(TOKEN_KEY);
  else localStorage.setItem(TOKEN_KEY, value);
}

/** Calls the Ferry API with the admin token; throws {@link ApiError} with the server's message. */
export async function api<T>(
  path: string,
  init: { method?: string; json?: unknown; token?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${init.token ?? token() ?? ''}` };
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: init.method ?? 'GET',
    headers,
    body: init.json !== undefined ? JSON.stringify(init.json) : undefined,
  });
  const text = await response.text();
  const body = text ? (JSON.parse(text) as unknown) : null;
  if (!response.ok) {
    if (response.status === 401 && init.token === undefined) {
      setToken(null);
      location.hash = '#/login';
    }
    throw new ApiError(
      response.status,
      (body as { message?: string } | null)?.message ?? response.statusText,
    );
  }
  return body as T;
}

export type EventHandler = (event: FerryEvent) => void;

/**
 * Live events of one fleet over `GET /v1/events` (EventSource with `?token=`, which reconnects by
 * itself). Returns a function that closes the stream.
 */
export function subscribe(
  fleetId: string | null,
  onEvent: EventHandler,
  onStatus?: (live: boolean) => void,
): () => void {
  const query = new URLSearchParams({ token: token() ?? '' });
  if (fleetId) query.set('fleet', fleetId);
  const source = new EventSource(`/v1/events?${query.toString()}`);
  const handler = (message: MessageEvent<string>): void => {
    try {
      onEvent(JSON.parse(message.data) as FerryEvent);
    } catch {
      // A malformed event is skipped; the next full refresh corrects the page.
    }
  };
  for (const type of FERRY_EVENT_TYPES) source.addEventListener(type, handler as EventListener);
  source.onopen = () => onStatus?.(true);
  source.onerror = () => onStatus?.(false);
  return () => source.close();
}
