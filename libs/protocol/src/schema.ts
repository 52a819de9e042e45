import { z } from 'zod';
import { ValidationError } from './errors';

/**
 * Parses `value` with `schema`, throwing a {@link ValidationError} whose message names each bad field.
 * Every edge (HTTP body, query, MQTT payload, job data) goes through this before use.
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what = 'input'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const reasons = result.error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : what;
    return `${path}: ${issue.message}`;
  });
  throw new ValidationError(`invalid ${what}: ${reasons.join('; ')}`, { issues: reasons });
}
