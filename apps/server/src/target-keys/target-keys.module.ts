import { Module } from '@nestjs/common';
import { TargetKeysController } from './target-keys.controller';
import { TargetKeysRepository } from './target-keys.repository';
import { TargetKeysService } from './target-keys.service';

/** The server's online keys that sign device targets: stored, rotated, listed. */
@Module({
  controllers: [TargetKeysController],
  providers: [TargetKeysRepository, TargetKeysService],
  exports: [TargetKeysService],
})
export class TargetKeysModule {}
