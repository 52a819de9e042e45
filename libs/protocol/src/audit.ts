import { z } from 'zod';

/** How a request recorded in the audit log ended. */
export type AuditOutcome = 'ok' | 'denied' | 'failed';

/**
 * One audit log entry (docs/security.md): who (the key's name; `bootstrap` for the bootstrap admin
 * token, `unknown` for a token that proved nothing), what (action and the ids acted on), when, from
 * where, and how it ended. Never a secret: no bodies, no tokens, no variable values.
 */
export interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  actorKeyId: string | null;
  /** `<feature>.<operation>`, e.g. `releases.push`, `rollouts.abort`, `auth.whoami` (a sign-in). */
  action: string;
  method: string;
  path: string;
  fleetId: string | null;
  /** The route's parameters and the id of what the request created. */
  targets: Record<string, string>;
  source: string;
  status: number;
  outcome: AuditOutcome;
  error: string | null;
}

export const AuditQuerySchema = z
  .object({
    /** Fleet slug or id. */
    fleet: z.string().min(1).max(63).optional(),
    /** Entries at or after this time (ISO-8601). */
    since: z.string().datetime({ offset: true }).optional(),
    actor: z.string().min(1).max(63).optional(),
    limit: z.coerce.number().int().min(1).max(5000).default(500),
  })
  .strict();
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

/** The outcome an HTTP status stands for. */
export function auditOutcome(status: number): AuditOutcome {
  if (status === 401 || status === 403) return 'denied';
  return status < 400 ? 'ok' : 'failed';
}
