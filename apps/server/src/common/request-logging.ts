import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestLogger } from '@ferry/logging';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { redactUrl } from './redact-url';

/**
 * Express middleware: one log line per request (health probes excepted), an `X-Request-Id` on every
 * answer, and the request's child logger for whatever Nest logs while handling it.
 */
export function requestLogging(
  logger: Logger,
): (request: IncomingMessage, response: ServerResponse, next: () => void) => void {
  const http = pinoHttp({
    logger,
    genReqId: (request, response) => {
      const given = request.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
      response.setHeader('X-Request-Id', id);
      return id;
    },
    // What a request log line says: never headers (they carry the admin token and device keys,
    // and were most of the log's volume) and never a secret of the query (GET /v1/events takes
    // the admin token as ?token= because browsers' EventSource cannot send headers).
    serializers: {
      req: (req: { id?: unknown; method?: string; url?: string }) => ({
        id: req.id,
        method: req.method,
        url: redactUrl(req.url),
      }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    autoLogging: { ignore: (request) => request.url === '/healthz' || request.url === '/readyz' },
  });
  return (request, response, next) => {
    http(request, response, () => {
      requestLogger.run((request as IncomingMessage & { log: Logger }).log, next);
    });
  };
}
