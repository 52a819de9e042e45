import { Global, Module, OnModuleInit } from '@nestjs/common';
import { BlobRepository } from './blob.repository';
import { BlobsController } from './blobs.controller';

@Global()
@Module({ controllers: [BlobsController], providers: [BlobRepository], exports: [BlobRepository] })
export class BlobsModule implements OnModuleInit {
  constructor(private readonly blobs: BlobRepository) {}

  async onModuleInit(): Promise<void> {
    await this.blobs.sweepTemporaryFiles();
  }
}
