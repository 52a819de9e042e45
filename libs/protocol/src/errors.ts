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

/** The client stopped sending a request body it had started (no byte for longer than allowed). */
export class RequestTimeoutError extends FerryError {
  readonly code = 'request_timeout';
}

/** An archive that is well-formed enough to read but cannot be used as a release. */
export class UnusableArchiveError extends FerryError {
  readonly code = 'unusable_archive';
}

/** A release's compose file that Ferry cannot run as written: the message names each service and key. */
export class InvalidComposeError extends FerryError {
  readonly code = 'invalid_compose';
}

/**
 * True for the errors a full disk or an exhausted quota gives: `ENOSPC`/`EDQUOT` from the file
 * system, `SQLITE_FULL` from SQLite, `53100` (disk_full) from PostgreSQL.
 */
export function isDiskFullError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL' || code === '53100';
}

/** The client closed its request before sending all of it: nobody is left to read an answer. */
export class ClientClosedError extends FerryError {
  readonly code = 'client_closed';
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

/** The database stayed locked by another process for longer than the server waits; try again later. */
export class DatabaseBusyError extends UnavailableError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, { retryAfterSeconds });
  }
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  details?: Record<string, unknown>;
  requestId?: string;
}

/** A release manifest's signature does not verify under the fleet key: nothing of it may be used. */
export class ManifestSignatureError extends FerryError {
  readonly code = 'bad_signature';
}

/** Why a device refused a target: which check of docs/security.md "Signed targets" failed. */
export type TargetRefusal =
  'malformed' | 'signature' | 'device' | 'expired' | 'replay' | 'downgrade' | 'release-keys';

/** A target the device will not act on; it stays on the release it runs and reports this. */
export class TargetRefusedError extends FerryError {
  readonly code = 'target_refused';
  constructor(
    readonly reason: TargetRefusal,
    message: string,
  ) {
    super(`target refused (${reason}): ${message}`, { reason });
  }
}
