export { applyDelta, createDeltaReadStream, decodeDelta } from './decoder';
export type { ApplyDeltaOptions, ApplyDeltaResult, DecodeDeltaOptions } from './decoder';
export { encodeDelta } from './encoder';
export type { EncodeDeltaOptions, EncodeDeltaResult, EncodeProgress, EncodingChoice } from './encoder';
export type { CompressionOptions, OpStats } from './delta-writer';
export { readDeltaInfo } from './inspect';
export type { DeltaInfo } from './inspect';
export { DELTA_MAGIC, DELTA_VERSION, type DeltaHeader, type SectionInfo } from './format';
export { indexTar, type TarEntry, type TarIndex } from './tar-index';
export {
  DeltaBaseMismatchError,
  DeltaCorruptError,
  DeltaError,
  DeltaFormatError,
  DeltaInputError,
  DeltaTargetMismatchError,
  DeltaTruncatedError,
  DeltaUnsupportedVersionError,
} from './errors';
