import { ExitCode } from './exit-codes';

/** An error the CLI reports as one line and turns into a documented exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad arguments or local input (a file that cannot be read, a malformed `key=value`). */
export class InputError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.Usage);
  }
}

/** No URL or token configured, or the server refused the token. */
export class NotLoggedInError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.NotLoggedIn);
  }
}

/** The server could not be reached, failed (5xx) or is not ready. */
export class UnreachableError extends CliError {
  constructor(
    message: string,
    /** True when the server answered (5xx), false when it could not be reached at all. */
    readonly answered = false,
  ) {
    super(message, ExitCode.Unreachable);
  }
}

/** The server answered 4xx: the request was understood and refused. */
export class ServerRefusedError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message, ExitCode.Refused);
  }
}
