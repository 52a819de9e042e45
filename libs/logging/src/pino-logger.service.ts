import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';

/** The request's child logger (with its request id) while an HTTP request is handled. */
export const requestLogger = new AsyncLocalStorage<Logger>();

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Nest's LoggerService over pino (the shape is structural, so this library needs no Nest import):
 * Nest's own lines and every `new Logger(context)` in the code go to the same pino logger as the
 * HTTP request lines, with `context` as a field and, inside a request, the request's id.
 * Hand-written rather than nestjs-pino: nestjs-pino 5 needs Node 22.12 and 4.x stops at Nest 11,
 * and the part of it Ferry used is these few lines.
 */
export class PinoLoggerService {
  constructor(private readonly root: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    const logger = requestLogger.getStore() ?? this.root;
    if (!logger.isLevelEnabled(level)) return;
    // Nest passes the context last: log(message, context), error(message, stack, context).
    const rest = [...params];
    const context = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? rest.pop() : undefined;
    const fields: Record<string, unknown> = context === undefined ? {} : { context };
    if (level === 'error' && typeof rest[0] === 'string') fields.stack = rest[0];
    if (message instanceof Error) {
      logger[level]({ ...fields, err: message }, message.message);
    } else if (typeof message === 'object' && message !== null) {
      logger[level]({ ...fields, ...(message as Record<string, unknown>) });
    } else {
      logger[level](fields, String(message));
    }
  }
}
