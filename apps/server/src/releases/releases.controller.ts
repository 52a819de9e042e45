import { Controller, Get, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { PushReleaseQuerySchema, Release, ValidationError, parseWith } from '@ferry/protocol';
import { PushedRelease, ReleasesService } from './releases.service';

const ARCHIVE_TYPES = /^(application\/(x-tar|octet-stream|gzip|x-gzip|vnd\.oci\.image\.layout\.v1\.tar)|)$/;

@ApiTags('releases')
@ApiBearerAuth()
@Controller('v1')
export class ReleasesController {
  constructor(private readonly releases: ReleasesService) {}

  /**
   * Pushes a release: the body is a `docker save` / docker-archive or OCI archive (optionally
   * gzip'd), streamed to disk and verified, never buffered whole.
   */
  @Post('fleets/:fleet/releases')
  @ApiBody({ description: 'image archive (application/x-tar)', schema: { type: 'string', format: 'binary' } })
  async push(
    @Param('fleet') fleet: string,
    @Query() query: unknown,
    @Req() request: Request,
  ): Promise<PushedRelease> {
    const { version, note } = parseWith(PushReleaseQuerySchema, query, 'query');
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (!ARCHIVE_TYPES.test(type)) {
      throw new ValidationError(
        `send the archive as the request body with Content-Type application/x-tar (got ${type})`,
      );
    }
    const length = request.headers['content-length'];
    return this.releases.push(fleet, request, {
      version,
      note,
      declaredBytes: length ? Number(length) : undefined,
    });
  }

  @Get('fleets/:fleet/releases')
  async list(@Param('fleet') fleet: string): Promise<Release[]> {
    return this.releases.list(fleet);
  }

  @Get('releases/:id')
  async get(@Param('id') id: string): Promise<Release> {
    return this.releases.get(id);
  }
}
