/**
 * `@ferry/delta/decoder`: applying a delta and nothing else, for the device agent. The full entry point
 * (`@ferry/delta`) also exports the encoder, which a device must never bundle; `test/agent-bundle.e2e.ts` checks that none of it reaches the agent.
 */
export { applyDelta, createDeltaReadStream, decodeDelta } from './delta/decoder';
export type { ApplyDeltaOptions, ApplyDeltaResult, DecodeDeltaOptions } from './delta/decoder';
export {
  DeltaBaseMismatchError,
  DeltaCorruptError,
  DeltaError,
  DeltaFormatError,
  DeltaInputError,
  DeltaTargetMismatchError,
  DeltaTruncatedError,
  DeltaUnsupportedVersionError,
} from './delta/errors';
