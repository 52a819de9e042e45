import { Controller, Get, Head, Headers, Param, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { NotFoundError, ValidationError, isDigest } from '@ferry/protocol';
import { OperatorOrDevice } from '../auth/auth.decorators';
import { BlobRepository } from './blob.repository';
import { parseByteRange } from './byte-range';

/**
 * Content-addressed downloads (layers, gzip copies, deltas, configs) with single-range support
 * (RFC 9110 §14): 206 with Content-Range, 416 past the end, ETag = the digest, If-Range honoured.
 */
@ApiTags('blobs')
@ApiBearerAuth()
@Controller('v1/blobs')
@OperatorOrDevice()
export class BlobsController {
  constructor(private readonly blobs: BlobRepository) {}

  @Head(':digest')
  async head(@Param('digest') digest: string, @Res() response: Response): Promise<void> {
    const size = await this.sizeOf(digest);
    this.commonHeaders(response, digest);
    response.setHeader('Content-Length', String(size));
    response.status(200).end();
  }

  @Get(':digest')
  async get(
    @Param('digest') digest: string,
    @Headers('range') rangeHeader: string | undefined,
    @Headers('if-range') ifRange: string | undefined,
    @Res() response: Response,
  ): Promise<void> {
    const size = await this.sizeOf(digest);
    const etag = `"${digest}"`;
    const range = ifRange !== undefined && ifRange !== etag ? null : parseByteRange(rangeHeader, size);
    this.commonHeaders(response, digest);
    if (range) {
      response.status(206);
      response.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      response.setHeader('Content-Length', String(range.end - range.start + 1));
    } else {
      response.status(200);
      response.setHeader('Content-Length', String(size));
    }
    await pipeline(this.blobs.read(digest, range ?? undefined), response);
  }

  private async sizeOf(digest: string): Promise<number> {
    if (!isDigest(digest)) throw new ValidationError(`not a sha256 digest: ${String(digest)}`);
    const size = await this.blobs.size(digest);
    if (size === null) throw new NotFoundError(`no blob ${digest}`);
    return size;
  }

  private commonHeaders(response: Response, digest: string): void {
    response.setHeader('ETag', `"${digest}"`);
    response.setHeader('Accept-Ranges', 'bytes');
    response.setHeader('Content-Type', 'application/octet-stream');
    response.setHeader('Cache-Control', 'private, max-age=31536000, immutable');
    response.setHeader('Docker-Content-Digest', digest);
  }
}
