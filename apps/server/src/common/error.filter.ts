import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  ConflictError,
  ErrorBody,
  FerryError,
  ForbiddenError,
  NotFoundError,
  PayloadTooLargeError,
  RangeNotSatisfiableError,
  RateLimitedError,
  UnauthenticatedError,
  UnavailableError,
  UnusableArchiveError,
  ValidationError,
} from '@ferry/protocol';

/** The one place where named errors become HTTP status codes. */
export function statusOf(error: FerryError): number {
  if (error instanceof ValidationError) return 400;
  if (error instanceof UnauthenticatedError) return 401;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof RangeNotSatisfiableError) return 416;
  if (error instanceof UnusableArchiveError) return 422;
  if (error instanceof RateLimitedError) return 429;
  if (error instanceof UnavailableError) return 503;
  return 500;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
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
    const request = context.getRequest<Request & { id?: unknown }>();
    let status = 500;
    let message = 'internal error';
    let details: Record<string, unknown> | undefined;
    if (exception instanceof FerryError) {
      status = statusOf(exception);
      message = exception.message;
      details = exception.details;
      if (exception instanceof RateLimitedError)
        response.setHeader('Retry-After', String(exception.retryAfterSeconds));
      if (exception instanceof RangeNotSatisfiableError)
        response.setHeader('Content-Range', `bytes */${exception.size}`);
    } else if (exception instanceof HttpException) {
      status = exception.getStatus();
      const body = exception.getResponse();
      message =
        typeof body === 'string' ? body : ((body as { message?: string }).message ?? exception.message);
      if (Array.isArray(message)) message = message.join('; ');
    } else if ((exception as { type?: string }).type === 'entity.parse.failed') {
      status = 400;
      message = 'request body is not valid JSON';
    } else if ((exception as { type?: string }).type === 'entity.too.large') {
      status = 413;
      message = 'request body is too large';
    }
    if (status >= 500) {
      this.logger.error(
        { err: exception, method: request.method, url: request.url, requestId: request.id },
        `unhandled error on ${request.method} ${request.url}`,
      );
    }
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
