import { Redis } from 'ioredis';
import { RedisTarget, connectRedis, redisTarget } from './redis-connection';

/**
 * Redis seen from the server and the worker: one check at start (a clear line and exit 69 when it
 * does not answer) and one monitor at run time that every Redis client reports its errors to, so an
 * outage is one "lost" line and one "back" line, never a line per reconnect attempt.
 */

/** `url` without its password (`redis://user:***@host:6379`), for logs and error lines. */
export function redactUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable URL)';
  }
}

/** `target` for logs and error lines, without the password: the URL, or the sentinels and master name. */
export function describeRedis(target: RedisTarget | string): string {
  const { url, sentinel } = redisTarget(target);
  if (!sentinel) return `${redactUrlPassword(url)} (REDIS_URL)`;
  const hosts = sentinel.hosts.map((h) =>
    h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`,
  );
  return `the primary "${sentinel.name}" of sentinels ${hosts.join(',')} (REDIS_SENTINELS)`;
}

/** Redis did not answer at start: the one line the process prints before it exits 69. */
export class RedisUnreachableError extends Error {
  constructor(target: RedisTarget | string, cause: string) {
    super(`Redis is not reachable at ${describeRedis(target)}: ${cause}`);
    this.name = new.target.name;
  }
}

/** EX_UNAVAILABLE (sysexits.h): a service the process needs is not there. */
export const EXIT_SERVICE_UNAVAILABLE = 69;

/** The cause of a connection failure in a few words (ioredis' AggregateError names none of its own). */
function causeOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return causeOf(error.errors[0]);
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim() || 'no answer';
}

/**
 * Connects to `target` and sends PING, within `timeoutMs`; throws {@link RedisUnreachableError} naming
 * the cause. Makes one connection attempt, never retries, and prints nothing.
 */
export async function pingRedis(target: RedisTarget | string, timeoutMs = 3000): Promise<void> {
  const redis = connectRedis(target, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let last: unknown = null;
  redis.on('error', (error: unknown) => (last = error));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    throw new RedisUnreachableError(target, causeOf(last ?? error));
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}

/** Where the monitor writes its two lines. */
export interface OutageLog {
  warn(message: string): void;
  log(message: string): void;
}

/** Anything that emits its connection errors as `error` events: ioredis clients, BullMQ classes. */
export interface ErrorEmitter {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * Takes the errors of every Redis client of a process. The first error while Redis is up is checked
 * with a PING on a connection of the monitor's own; when that fails too, the monitor logs one line
 * ("lost", with the cause) and from then on PINGs every second, swallowing the clients' errors, until
 * Redis answers: then one more line ("back", with how long it was away). Errors of a client that is
 * merely reconnecting after Redis came back do not make a new outage unless the PING fails.
 */
export class RedisOutageMonitor {
  private readonly probe: Redis;
  private state: 'up' | 'checking' | 'down' = 'up';
  private since = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly target: RedisTarget | string,
    private readonly logger: OutageLog,
    private readonly probeEveryMs = 1000,
  ) {
    // Its own connection, failing fast: a PING never waits in an offline queue.
    this.probe = connectRedis(target, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: () => Math.min(probeEveryMs, 1000),
    });
    this.probe.on('error', () => undefined);
  }

  /** Whether Redis is known to be away (a failure now is explained by the outage line). */
  get down(): boolean {
    return this.state === 'down';
  }

  /** Sends the `error` events of `client` here (and nowhere else: nothing else logs them). */
  watch<T extends ErrorEmitter>(client: T): T {
    client.on('error', (error: Error) => this.report(error));
    return client;
  }

  /** A Redis client failed: checks whether Redis is away. */
  report(error: Error): void {
    if (this.closed) return;
    if (this.state !== 'up') {
      this.suppressed += 1;
      return;
    }
    this.state = 'checking';
    void this.ping().then((answered) => {
      if (this.closed) return;
      if (answered) {
        this.state = 'up';
        return;
      }
      this.state = 'down';
      this.since = Date.now();
      this.suppressed = 0;
      this.logger.warn(
        `Redis lost at ${describeRedis(this.target)}: ${causeOf(error)}; retrying every second, ` +
          `queued work waits and failure limits count per process until it is back`,
      );
      this.timer = setInterval(() => void this.retry(), this.probeEveryMs);
    });
  }

  /** Stops probing and closes the monitor's connection at once (also during an outage). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.probe.disconnect();
  }

  private async retry(): Promise<void> {
    if (this.state !== 'down' || this.closed || !(await this.ping())) return;
    clearInterval(this.timer);
    this.state = 'up';
    const seconds = Math.round((Date.now() - this.since) / 1000);
    this.logger.log(
      `Redis is back at ${describeRedis(this.target)} after ${seconds} s ` +
        `(${this.suppressed} connection error(s) of its clients not logged)`,
    );
  }

  private async ping(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.probe.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), 1000);
        }),
      ]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
