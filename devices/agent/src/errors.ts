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

/** The release manifest's signature does not verify under the pinned fleet key: never act on it. */
export class SignatureError extends AgentError {
  constructor(message: string) {
    super(message, 'SIGNATURE');
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
  return code === 'ENOSPC' || code === 'EDQUOT';
}
