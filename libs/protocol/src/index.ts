export * from './errors';
export * from './schema';
export * from './digest';
export * from './fleet';
export * from './device';
export * from './release';
export * from './topics';
export * from './messages';
