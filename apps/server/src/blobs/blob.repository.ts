import { Provider } from '@nestjs/common';
import { BlobStore, createBlobStore } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
export { BlobDigestMismatchError, BlobStore } from '@ferry/storage';

/**
 * The server's blob store as a Nest provider, injected as {@link BlobStore}: the local folder
 * (DATA_DIR/blobs, the default) or an S3-compatible store (`BLOB_STORE=s3://bucket/prefix`).
 */
export const blobStoreProvider: Provider = {
  provide: BlobStore,
  inject: [FERRY_CONFIG],
  useFactory: (config: FerryConfig): BlobStore => createBlobStore(config.blobs, config.dataDir),
};
