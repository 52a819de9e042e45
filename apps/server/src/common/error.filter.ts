import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  ClientClosedError,
  ConflictError,
  DatabaseBusyError,
  ErrorBody,
  FerryError,
  ForbiddenError,
  InvalidComposeError,
  isDiskFullError,
  NotFoundError,
  PayloadTooLargeError,
  RangeNotSatisfiableError,
  RateLimitedError,
  RequestTimeoutError,
  UnauthenticatedError,
  UnavailableError,
  UnusableArchiveError,
  ValidationError,
} from '@ferry/protocol';
import type { FerryRequest } from '../auth/auth.decorators';
import { redactUrl } from './redact-url';

/** The one place where named errors become HTTP status codes. */
export function statusOf(error: FerryError): number {
  if (error instanceof ValidationError || error instanceof ClientClosedError) return 400;
  if (error instanceof UnauthenticatedError) return 401;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof RequestTimeoutError) return 408;
  if (error instanceof ConflictError) return 409;
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof RangeNotSatisfiableError) return 416;
  if (error instanceof UnusableArchiveError || error instanceof InvalidComposeError) return 422;
  if (error instanceof RateLimitedError) return 429;
  if (error instanceof UnavailableError) return 503;
  return 500;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

/**
 * Answers every error as JSON `{statusCode, error, message, details?, requestId}`. Unknown errors are
 * logged with the request they broke and answered 500 without internals.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const context = host.switchToHttp();
    const response = context.getResponse<Response>();
    const request = context.getRequest<Request & FerryRequest>();
    let status = 500;
    let message = 'internal error';
    let details: Record<string, unknown> | undefined;
    if (exception instanceof FerryError) {
      status = statusOf(exception);
      message = exception.message;
      details = exception.details;
      if (exception instanceof RateLimitedError || exception instanceof DatabaseBusyError)
        response.setHeader('Retry-After', String(exception.retryAfterSeconds));
      if (exception instanceof RangeNotSatisfiableError)
        response.setHeader('Content-Range', `bytes */${exception.size}`);
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      message =
        typeof body === 'string' ? body : ((body as { message?: string }).message ?? exception.message);
      if (Array.isArray(message)) message = message.join('; ');
    } else if (isDiskFullError(exception)) {
      // Whatever route hit it: the request was fine, the server's own disk (or database) is full.
      status = 507;
      message = `the server's disk is full (${(exception as { code: string }).code}): an operator must free space, then try again`;
    } else if ((exception as { type?: string }).type === 'entity.parse.failed') {
      status = 400;
      message = 'request body is not valid JSON';
    } else if ((exception as { type?: string }).type === 'entity.too.large') {
      status = 413;
      message = 'request body is too large';
    }
    if (status >= 500) {
      const url = redactUrl(request.originalUrl ?? request.url);
      this.logger.error(
        { err: exception, method: request.method, url, requestId: request.id },
        `unhandled error on ${request.method} ${url}`,
      );
    }
    // For the audit log: what the operator was told, which never carries a secret.
    request.failure = message;
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const body: ErrorBody = {
      statusCode: status,
      error: REASONS[status] ?? 'Error',
      message,
      ...(details ? { details } : {}),
      ...(typeof request.id === 'string' || typeof request.id === 'number'
        ? { requestId: String(request.id) }
        : {}),
    };
    response.status(status).json(body);
  }
}
