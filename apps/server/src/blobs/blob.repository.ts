import { Inject, Injectable } from '@nestjs/common';
import { BlobStore } from '@ferry/storage';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';

export { BlobDigestMismatchError } from '@ferry/storage';

/** The server's blob store (DATA_DIR/blobs), as a Nest provider. */
@Injectable()
export class BlobRepository extends BlobStore {
  constructor(@Inject(FERRY_CONFIG) config: FerryConfig) {
    super(config.dataDir);
  }
}
