/**
 * The zod-free entry point of @ferry/storage (`@ferry/storage/files`): durable writes and file
 * digests, for code that must not pull in the blob store's dependencies (the device agent).
 */
export * from './durable-file';
