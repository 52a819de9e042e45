export * from './archive-limits';
export * from './image-archive.reader';
export * from './layer-stager';
export * from './member-name';
export * from './service-name';
export * from './hashing-file-writer';
export * from './release-bundle.reader';
export * from './compose-release';
