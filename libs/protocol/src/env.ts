import { z } from 'zod';

/** A configuration problem, naming each environment variable that is wrong and why. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Variables whose value is a secret: a configuration error names them but never shows the value. */
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL|PRIVATE/i;

/** Characters of a value a configuration error shows: a huge variable must not flood the log. */
const SHOWN_CHARS = 80;

/**
 * How a configuration error shows the value of `name`: hidden for a secret, the password of a URL
 * (`redis://user:pass@host`) masked, and at most {@link SHOWN_CHARS} characters.
 */
export function shownValue(name: string, value: string): string {
  if (SECRET_NAME.test(name)) return `(${value.length} characters, hidden)`;
  const masked = value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^/@\s]*@/i, '$1:***@');
  const shown = JSON.stringify(masked.slice(0, SHOWN_CHARS));
  return masked.length > SHOWN_CHARS ? `${shown}… (${masked.length} characters)` : shown;
}

/**
 * Parses environment variables with `schema` (empty values count as unset); throws a
 * {@link ConfigError} that names every bad variable with its value as {@link shownValue} shows it. The
 * one way server and worker read their environment.
 */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      return `${name}=${shownValue(name, String(present[name] ?? ''))}: ${issue.message}`;
    }),
  );
}
