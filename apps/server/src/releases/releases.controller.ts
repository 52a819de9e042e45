import { Body, Controller, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import { Requires } from '../auth/auth.decorators';
import type { Request } from 'express';
import {
  PushReleaseQuerySchema,
  Release,
  RequestTimeoutError,
  SignReleaseSchema,
  ValidationError,
  parseWith,
} from '@ferry/protocol';
import { RELEASE_BUNDLE_TYPE } from '@ferry/delta';
import { PushedRelease, ReleasesService } from './releases.service';

const ARCHIVE_TYPES = /^(application\/(x-tar|octet-stream|gzip|x-gzip|vnd\.oci\.image\.layout\.v1\.tar)|)$/;

@ApiTags('releases')
@ApiBearerAuth()
@Controller('v1')
export class ReleasesController {
  constructor(private readonly releases: ReleasesService) {}

  /**
   * Pushes a release: the body is a `docker save` / docker-archive or OCI archive (optionally
   * gzip'd), or a release bundle (`application/vnd.ferry.release+tar`: a compose file plus image
   * archives, docs/compose.md), streamed to disk and verified, never buffered whole.
   */
  @Post('fleets/:fleet/releases')
  @Requires('deployer', { fleet: 'fleet' })
  @ApiBody({ description: 'image archive (application/x-tar)', schema: { type: 'string', format: 'binary' } })
  async push(
    @Param('fleet') fleet: string,
    @Query() query: unknown,
    @Req() request: Request,
  ): Promise<PushedRelease> {
    const { version, note } = parseWith(PushReleaseQuerySchema, query, 'query');
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const bundle = type === RELEASE_BUNDLE_TYPE;
    if (!bundle && !ARCHIVE_TYPES.test(type)) {
      throw new ValidationError(
        `send the archive as the request body with Content-Type application/x-tar, or a compose bundle as ${RELEASE_BUNDLE_TYPE} (got ${type})`,
      );
    }
    const length = request.headers['content-length'];
    try {
      return await this.releases.push(fleet, request, {
        version,
        note,
        declaredBytes: length ? Number(length) : undefined,
        bundle,
      });
    } catch (error) {
      // A client that stopped sending keeps its connection open for nothing: close it after the
      // answer. (Not for other refusals: a client still sending would get a reset, not the answer.)
      if (error instanceof RequestTimeoutError) request.res?.setHeader('connection', 'close');
      throw error;
    }
  }

  @Get('fleets/:fleet/releases')
  @Requires('viewer', { fleet: 'fleet' })
  async list(@Param('fleet') fleet: string): Promise<Release[]> {
    return this.releases.list(fleet);
  }

  @Get('releases/:id')
  @Requires('viewer', { release: 'id' })
  async get(@Param('id') id: string): Promise<Release> {
    return this.releases.get(id);
  }

  /**
   * The release owners' signatures of a release's manifest (fleets with pinned release keys): 403
   * unless the threshold of the fleet's current release keys signed it; nothing is stored then.
   */
  @Post('releases/:id/signatures')
  @HttpCode(200)
  @Requires('deployer', { release: 'id' })
  async sign(@Param('id') id: string, @Body() body: unknown): Promise<Release> {
    return this.releases.sign(id, parseWith(SignReleaseSchema, body, 'signatures').signatures);
  }
}
