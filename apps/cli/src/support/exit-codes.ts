/**
 * Exit codes scripts can rely on. One scheme for every command; 2 is the verification failure the
 * offline `ferry delta` commands already used before the server commands existed.
 */
export enum ExitCode {
  Ok = 0,
  /** Bad arguments, an unreadable file, a refused confirmation. */
  Usage = 1,
  /** A delta or layer failed verification (corrupt, wrong base, digest mismatch). */
  Verification = 2,
  /** The server answered 4xx (other than 401/403): bad input, not found, conflict, unusable archive. */
  Refused = 3,
  /** The server cannot be reached, answered 5xx, or is not ready. */
  Unreachable = 4,
  /** No URL or token configured, or the server refused the token (401/403). */
  NotLoggedIn = 5,
  /** A watched rollout ended without completing (paused, aborted, failed, rolled back). */
  RolloutNotCompleted = 6,
}

/** The exit-code table printed in `ferry --help` and documented in docs/cli.md. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  usage or input error (bad option, unreadable file, confirmation refused)
  2  verification failure (corrupt delta, wrong base, digest mismatch)
  3  the server refused the request (4xx: bad input, not found, conflict, unusable archive)
  4  cannot reach the server, or it failed (5xx) or is not ready
  5  not logged in, or the token was refused (401/403)
  6  a watched rollout ended without completing (paused, aborted, failed)`;
