/** Limits that keep a hostile archive from exhausting disk, memory or CPU. */
export interface ArchiveLimits {
  /** Largest archive body accepted, in bytes (as received, possibly compressed). */
  maxArchiveBytes: number;
  /** Largest total of uncompressed layer bytes. */
  maxUncompressedBytes: number;
  /**
   * Largest ratio of uncompressed to compressed size for one gzip'd member; above it the member is a
   * suspected gzip bomb. Only applied past {@link ArchiveLimits.ratioFloorBytes}.
   * @defaultValue 100
   */
  maxCompressionRatio: number;
  /** Uncompressed bytes a gzip member may always reach, whatever its ratio. @defaultValue 16 MiB */
  ratioFloorBytes: number;
  /** Largest JSON member (manifest, index, config) parsed. @defaultValue 4 MiB */
  maxJsonBytes: number;
  /** Most members an archive may hold. @defaultValue 10,000 */
  maxMembers: number;
  /** Most images (services) one archive may hold. @defaultValue 64 */
  maxImages: number;
}

export function archiveLimits(
  overrides: Partial<ArchiveLimits> & { maxArchiveBytes: number },
): ArchiveLimits {
  return {
    maxUncompressedBytes: overrides.maxArchiveBytes * 4,
    maxCompressionRatio: 100,
    ratioFloorBytes: 16 * 1024 * 1024,
    maxJsonBytes: 4 * 1024 * 1024,
    maxMembers: 10_000,
    maxImages: 64,
    ...overrides,
  };
}
