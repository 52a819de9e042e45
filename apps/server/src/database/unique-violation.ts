/**
 * Whether a database error is a unique-constraint violation: PostgreSQL's SQLSTATE 23505, or SQLite's
 * `SQLITE_CONSTRAINT_UNIQUE` (better-sqlite3 sets the code; the message names the columns).
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE') return true;
  return typeof message === 'string' && message.startsWith('UNIQUE constraint failed');
}
