export { applyDelta, createDeltaReadStream, decodeDelta } from './decoder';
export type { ApplyDeltaOptions, ApplyDeltaResult, DecodeDeltaOptions } from './decoder';
export { encodeDelta } from './encoder';
export type { EncodeDeltaOptions, EncodeDeltaResult, EncodeProgress, EncodingChoice } from './encoder';
export type { CompressionOptions, OpStats } from './delta-writer';
export { DEFAULT_LITERAL_STRONG_LIMIT } from './delta-writer';
export { readDeltaInfo } from './inspect';
export { exitWithParent, type ParentWatchOptions } from './parent-watch';
export type { DeltaInfo } from './inspect';
export { DELTA_MAGIC, DELTA_VERSION, type DeltaHeader, type SectionInfo } from './format';
export { indexTar, type TarEntry, type TarIndex } from './tar-index';
export {
  DeltaBaseMismatchError,
  DeltaCorruptError,
  DeltaError,
  DeltaFormatError,
  DeltaInputError,
  DeltaNoSpaceError,
  DeltaTargetMismatchError,
  DeltaTruncatedError,
  DeltaUnsupportedVersionError,
} from './errors';
