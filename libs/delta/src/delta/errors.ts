/** Base class of every error the delta engine throws on purpose; `code` is stable for callers to switch on. */
export class DeltaError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The file is not a Ferry delta at all (wrong magic, impossible header). */
export class DeltaFormatError extends DeltaError {
  constructor(message: string) {
    super(message, 'DELTA_FORMAT');
  }
}

/** The delta was written by a newer (or unknown) version of the format. */
export class DeltaUnsupportedVersionError extends DeltaError {
  constructor(readonly version: number) {
    super(`unsupported delta format version ${version}`, 'DELTA_UNSUPPORTED_VERSION');
  }
}

/** The delta's bytes do not match its checksum, or its operations are inconsistent. */
export class DeltaCorruptError extends DeltaError {
  constructor(message: string, code = 'DELTA_CORRUPT') {
    super(message, code);
  }
}

/** The delta file ends before its declared length. */
export class DeltaTruncatedError extends DeltaCorruptError {
  constructor(message: string) {
    super(message, 'DELTA_TRUNCATED');
  }
}

/** A base layer given to the decoder is not the one the delta was built against. */
export class DeltaBaseMismatchError extends DeltaError {
  constructor(
    message: string,
    readonly index: number,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(message, 'DELTA_BASE_MISMATCH');
  }
}

/** The rebuilt layer's size or sha256 differs from the target recorded in the delta. */
export class DeltaTargetMismatchError extends DeltaError {
  constructor(
    message: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(message, 'DELTA_TARGET_MISMATCH');
  }
}

/**
 * The delta declares a target larger than the free space where it would be written: refused
 * before the first byte, so a crafted header cannot fill a disk.
 */
export class DeltaNoSpaceError extends DeltaError {
  constructor(
    message: string,
    readonly needed: number,
    readonly available: number,
  ) {
    super(message, 'DELTA_NO_SPACE');
  }
}

/** The encoder was given unusable input (missing file, no base, unreadable tar). */
export class DeltaInputError extends DeltaError {
  constructor(message: string) {
    super(message, 'DELTA_INPUT');
  }
}
