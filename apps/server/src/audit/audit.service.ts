import { randomBytes } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AuditEntry, AuditQuery, Principal, auditOutcome } from '@ferry/protocol';
import type { FerryRequest } from '../auth/auth.decorators';
import { Clock } from '../clock/clock';
import { AuditRepository } from './audit.repository';

/** Route parameters that name things; anything else a route takes is left out of the log. */
const TARGET_PARAM = /^[\w.:@-]{1,200}$/;

let lastMs = 0;
let counter = 0;

/**
 * A UUIDv7-style id: milliseconds, then a counter, then random bits, so entries of one server sort in
 * the order they happened even within one millisecond (the log is read ordered by time, then id).
 */
export function auditId(ms: number): string {
  counter = ms === lastMs ? counter + 1 : 0;
  lastMs = ms;
  const hex =
    ms.toString(16).padStart(12, '0') +
    (counter & 0xffff).toString(16).padStart(4, '0') +
    randomBytes(8).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Records operator actions in the append-only audit log and reads it back. */
@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);

  constructor(
    private readonly audit: AuditRepository,
    private readonly clock: Clock,
  ) {}

  /**
   * Records the request with its final status before its answer leaves: the guard calls this before
   * deciding, so a refusal is recorded like a success, and a client that got its answer finds the
   * entry already in the log (read-your-writes; an entry written after the answer raced the next
   * request). The answer waits for one insert; a failed insert is logged and the answer still goes.
   */
  recordWhenDone(request: Request & FerryRequest, response: Response, action: string): void {
    const end = response.end.bind(response) as (...args: unknown[]) => Response;
    let ending = false;
    response.end = ((...args: unknown[]) => {
      if (ending) return response;
      ending = true;
      void this.record(request, action, response.statusCode).finally(() => {
        response.end = end as Response['end'];
        end(...args);
      });
      return response;
    }) as Response['end'];
  }

  private async record(request: Request & FerryRequest, action: string, status: number): Promise<void> {
    const principal: Principal | undefined = request.principal;
    const targets: Record<string, string> = {};
    for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, string>))
      if (typeof value === 'string' && TARGET_PARAM.test(value)) targets[name] = value;
    if (request.createdId) targets.created = request.createdId;
    const now = this.clock.nowMs();
    const entry: AuditEntry = {
      id: auditId(now),
      at: new Date(now).toISOString(),
      actor: principal?.name ?? 'unknown',
      actorKeyId: principal?.keyId ?? null,
      action,
      method: request.method,
      path: (request.originalUrl ?? request.url).split('?')[0]?.slice(0, 512) ?? '',
      fleetId: request.fleetId ?? null,
      targets,
      source: (request.ip ?? 'unknown').slice(0, 64),
      status,
      outcome: auditOutcome(status),
      error: status >= 400 ? ((request.failure ?? null)?.slice(0, 512) ?? null) : null,
    };
    try {
      await this.audit.append(entry);
    } catch (error) {
      // The answer is already sent; a lost entry must at least reach the log.
      this.logger.error(`audit entry lost (${JSON.stringify(entry)}): ${(error as Error).message}`);
    }
  }

  async list(query: Omit<AuditQuery, 'fleet'>, fleetIds: string[] | null) {
    return this.audit.list({
      fleetIds,
      since: query.since === undefined ? undefined : new Date(query.since).toISOString(),
      actor: query.actor,
      limit: query.limit,
    });
  }
}
