import { Controller, Get, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { OnlineKey } from '@ferry/protocol';
import { Requires } from '../auth/auth.decorators';
import { TargetKeysService } from './target-keys.service';

/** The server's online keys that sign device targets (public halves only). */
@ApiTags('target-keys')
@ApiBearerAuth()
@Controller('v1/target-keys')
export class TargetKeysController {
  constructor(private readonly keys: TargetKeysService) {}

  /** Every online key, newest first: which one signs now, which co-signs. */
  @Get()
  @Requires('viewer', 'all-fleets')
  async list(): Promise<OnlineKey[]> {
    return this.keys.list();
  }

  /** A new current online key; the one before it co-signs until the next rotation. */
  @Post('rotate')
  @Requires('admin', 'all-fleets')
  async rotate(): Promise<OnlineKey> {
    return this.keys.rotate();
  }
}
