/** Base of the errors the agent throws on purpose; `code` is stable for reports and tests. */
export class AgentError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A configuration value is missing or wrong; names the variable. */
export class AgentConfigError extends AgentError {
  constructor(message: string) {
    super(message, 'CONFIG');
  }
}

/** Not enough disk or memory for the update: report `deferred`, try again later. */
export class PreflightError extends AgentError {
  constructor(message: string) {
    super(message, 'PREFLIGHT');
  }
}

/** A downloaded blob's sha256 or size differs from what the target declared. */
export class DownloadVerifyError extends AgentError {
  constructor(message: string) {
    super(message, 'DOWNLOAD_VERIFY');
  }
}

/** The HTTP server answered with an error status. */
export class HttpStatusError extends AgentError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, 'HTTP_STATUS');
  }
}

/** The container engine refused a request. */
export class EngineError extends AgentError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, 'ENGINE');
  }
}

/** The new containers did not become healthy in time: roll back. */
export class HealthCheckError extends AgentError {
  constructor(message: string) {
    super(message, 'HEALTH');
  }
}

/** True for "the disk is full" in any of its spellings. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  // DELTA_NO_SPACE: the decoder refused a layer larger than the free space, before writing it.
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'DELTA_NO_SPACE';
}

/**
 * The update waits for a window of the device's update policy (a download window, or the maintenance
 * window installs need): reported `deferred` with `reason`, tried again when it opens (at `opensAt`,
 * epoch ms) and at least every minute meanwhile, as the policy or the clock may change.
 */
export class WindowWaitError extends AgentError {
  constructor(
    readonly reason: string,
    readonly opensAt: number,
  ) {
    super(`${reason} (opens ${new Date(opensAt).toISOString()})`, 'WINDOW_WAIT');
  }
}
