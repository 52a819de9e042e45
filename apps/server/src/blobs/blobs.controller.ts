import { Controller, Get, Head, Headers, Inject, Param, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { NotFoundError, ValidationError, isDigest } from '@ferry/protocol';
import { FerryRequest, OperatorOrDevice, Requires } from '../auth/auth.decorators';
import { BlobAccessRepository } from './blob-access.repository';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { BlobStore } from './blob.repository';
import { parseByteRange } from './byte-range';

/** The request header by which a client says it follows a redirect to the object store. */
export const ACCEPT_REDIRECT_HEADER = 'ferry-accept-redirect';

/**
 * Content-addressed downloads (layers, gzip copies, deltas, configs) with single-range support
 * (RFC 9110 §14): 206 with Content-Range, 416 past the end, ETag = the digest, If-Range honoured.
 * With an object store that presigns (S3) and `BLOB_DOWNLOADS=redirect`, a client that sends
 * `Ferry-Accept-Redirect: 1` is answered 307 to a short-lived presigned URL of the blob instead
 * (after the same access check); every other client is proxied as before.
 */
@ApiTags('blobs')
@ApiBearerAuth()
@Controller('v1/blobs')
@OperatorOrDevice()
export class BlobsController {
  constructor(
    private readonly blobs: BlobStore,
    private readonly access: BlobAccessRepository,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  @Head(':digest')
  @Requires('viewer', 'own-fleets')
  async head(
    @Param('digest') digest: string,
    @Req() request: Request & FerryRequest,
    @Res() response: Response,
  ): Promise<void> {
    const size = await this.sizeOf(digest, request);
    this.commonHeaders(response, digest);
    response.setHeader('Content-Length', String(size));
    response.status(200).end();
  }

  @Get(':digest')
  @Requires('viewer', 'own-fleets')
  async get(
    @Param('digest') digest: string,
    @Headers('range') rangeHeader: string | undefined,
    @Headers('if-range') ifRange: string | undefined,
    @Req() request: Request & FerryRequest,
    @Res() response: Response,
  ): Promise<void> {
    const size = await this.sizeOf(digest, request);
    if (this.config.blobs.downloads === 'redirect' && request.headers[ACCEPT_REDIRECT_HEADER] === '1') {
      const url = await this.blobs.presignedUrl(digest, this.config.blobs.presignSeconds);
      if (url) {
        response.setHeader('Cache-Control', 'no-store');
        response.setHeader('Docker-Content-Digest', digest);
        response.redirect(307, url);
        return;
      }
    }
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
    await pipeline(await this.blobs.open(digest, range ?? undefined), response);
  }

  private async sizeOf(digest: string, request: FerryRequest): Promise<number> {
    if (!isDigest(digest)) throw new ValidationError(`not a sha256 digest: ${String(digest)}`);
    // A device sees only what its own fleet's releases and deltas reference: any other blob is
    // answered as missing, so a device cannot even learn that it exists.
    const device = request.device;
    if (device && !(await this.access.fleetMayFetch(device.fleetId, digest)))
      throw new NotFoundError(`no blob ${digest}`);
    // The same for an operator key limited to some fleets: only those fleets' blobs.
    const scoped = request.principal?.fleetIds;
    if (scoped && !(await this.fleetsMayFetch(scoped, digest))) throw new NotFoundError(`no blob ${digest}`);
    const size = await this.blobs.size(digest);
    if (size === null) throw new NotFoundError(`no blob ${digest}`);
    return size;
  }

  private async fleetsMayFetch(fleetIds: string[], digest: string): Promise<boolean> {
    for (const fleetId of fleetIds) if (await this.access.fleetMayFetch(fleetId, digest)) return true;
    return false;
  }

  private commonHeaders(response: Response, digest: string): void {
    response.setHeader('ETag', `"${digest}"`);
    response.setHeader('Accept-Ranges', 'bytes');
    response.setHeader('Content-Type', 'application/octet-stream');
    response.setHeader('Cache-Control', 'private, max-age=31536000, immutable');
    response.setHeader('Docker-Content-Digest', digest);
  }
}
