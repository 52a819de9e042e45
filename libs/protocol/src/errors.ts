/**
 * Named errors shared by server, worker, CLI and agent. Callers act on the class; the HTTP layer maps
 * each class to one status code in one place (apps/server/src/common/error.filter.ts).
 */
export abstract class FerryError extends Error {
  /** A stable machine-readable code, sent to clients in error bodies. */
  abstract readonly code: string;
  constructor(
    message: string,
    /** Extra facts for the client (which field, which limit). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The input is malformed: a body, query or payload that does not match its schema. */
export class ValidationError extends FerryError {
  readonly code = 'invalid_input';
}

/** The caller did not prove who it is. */
export class UnauthenticatedError extends FerryError {
  readonly code = 'unauthenticated';
}

/** The caller is known but may not do this. */
export class ForbiddenError extends FerryError {
  readonly code = 'forbidden';
}

/** The thing named does not exist. */
export class NotFoundError extends FerryError {
  readonly code = 'not_found';
}

/** The request conflicts with what exists (a slug taken, a UUID registered under another key). */
export class ConflictError extends FerryError {
  readonly code = 'conflict';
}

/** The request body is larger than a configured limit. */
export class PayloadTooLargeError extends FerryError {
  readonly code = 'too_large';
}

/** An archive that is well-formed enough to read but cannot be used as a release. */
export class UnusableArchiveError extends FerryError {
  readonly code = 'unusable_archive';
}

/** The caller has failed too often and must wait. */
export class RateLimitedError extends FerryError {
  readonly code = 'rate_limited';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, { retryAfterSeconds });
  }
}

/** A requested byte range cannot be served. */
export class RangeNotSatisfiableError extends FerryError {
  readonly code = 'range_not_satisfiable';
  constructor(readonly size: number) {
    super(`requested range is outside the ${size}-byte resource`, { size });
  }
}

/** A dependency (database, Redis) is unreachable. */
export class UnavailableError extends FerryError {
  readonly code = 'unavailable';
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  details?: Record<string, unknown>;
  requestId?: string;
}
