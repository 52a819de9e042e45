import { Global, Module } from '@nestjs/common';
import { BlobAccessRepository } from './blob-access.repository';
import { BlobStore, blobStoreProvider } from './blob.repository';
import { BlobsController } from './blobs.controller';
import { StagingSweeperService } from './staging-sweeper.service';

@Global()
@Module({
  controllers: [BlobsController],
  providers: [blobStoreProvider, BlobAccessRepository, StagingSweeperService],
  exports: [BlobStore],
})
export class BlobsModule {}
