import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  ConflictError,
  NotFoundError,
  PayloadTooLargeError,
  Release,
  ReleaseManifest,
  ReleaseService,
} from '@ferry/protocol';
import { ImageArchive, archiveLimits, readImageArchive } from '@ferry/delta';
import { BlobRepository } from '../blobs/blob.repository';
import { FERRY_CONFIG } from '../config/config.module';
import { FerryConfig } from '../config/config';
import { FleetsService } from '../fleets/fleets.service';
import { signManifest } from './release-signer';
import { ReleaseEvents } from './release-events';
import { ReleasesRepository } from './releases.repository';

export interface PushedRelease extends Release {
  /** Layers this push brought that the server did not have before. */
  newLayers: string[];
  format: ImageArchive['format'];
}

@Injectable()
export class ReleasesService {
  private readonly logger = new Logger(ReleasesService.name);

  constructor(
    private readonly releases: ReleasesRepository,
    private readonly fleets: FleetsService,
    private readonly blobs: BlobRepository,
    private readonly events: ReleaseEvents,
    @Inject(FERRY_CONFIG) private readonly config: FerryConfig,
  ) {}

  /**
   * Stores a release from an image archive stream. Everything is read and verified in a staging
   * folder first; blobs enter the store and the release enters the database only when the whole
   * archive checked out, so a rejected push leaves nothing behind.
   */
  async push(
    fleetRef: string,
    body: Readable,
    options: { version?: number; note?: string; declaredBytes?: number },
  ): Promise<PushedRelease> {
    const fleet = await this.fleets.get(fleetRef);
    const max = this.config.limits.maxReleaseBytes;
    if (options.declaredBytes !== undefined && options.declaredBytes > max) {
      throw new PayloadTooLargeError(
        `release archive of ${options.declaredBytes} bytes exceeds the ${max}-byte limit (FERRY_MAX_RELEASE_BYTES)`,
        { limit: max },
      );
    }
    if (options.version !== undefined && (await this.releases.versionTaken(fleet.id, options.version))) {
      throw new ConflictError(`fleet ${fleet.slug} already has release version ${options.version}`);
    }
    const staging = await this.blobs.stagingDir();
    try {
      const archive = await readImageArchive(
        body,
        staging,
        archiveLimits({
          maxArchiveBytes: max,
          maxUncompressedBytes: max,
          maxCompressionRatio: this.config.limits.maxDecompressionRatio,
        }),
      );
      const diffIds = archive.images.flatMap((image) => image.layers.map((layer) => layer.diffId));
      const known = await this.releases.knownLayers(diffIds);
      for (const image of archive.images) {
        await this.blobs.adopt(image.config.path, image.config.digest);
        for (const layer of image.layers) {
          await this.blobs.adopt(layer.path, layer.diffId);
          await this.blobs.adopt(layer.gzipPath, layer.gzipDigest);
        }
      }
      const services: ReleaseService[] = archive.images.map((image) => ({
        name: image.service,
        image: image.reference,
        configDigest: image.config.digest,
        layers: image.layers.map((layer) => ({
          diffId: layer.diffId,
          size: layer.size,
          gzipDigest: layer.gzipDigest,
          gzipSize: layer.gzipSize,
        })),
      }));
      const id = randomUUID();
      const createdAt = new Date().toISOString();
      const uniqueSizes = new Map(services.flatMap((s) => s.layers.map((l) => [l.diffId, l.size] as const)));
      const totalSize = [...uniqueSizes.values()].reduce((a, b) => a + b, 0);
      const release = await this.releases
        .insert(fleet.id, options.version, (version) => {
          const manifest: ReleaseManifest = {
            schemaVersion: 1,
            fleetId: fleet.id,
            releaseId: id,
            version,
            createdAt,
            services,
          };
          return {
            id,
            fleetId: fleet.id,
            version,
            note: options.note ?? null,
            createdAt,
            services,
            totalSize,
            manifest,
            signature: signManifest(manifest, fleet.signingPrivateKey),
          };
        })
        .catch((error: unknown) => {
          if (/unique|duplicate/i.test((error as Error).message)) {
            throw new ConflictError(`fleet ${fleet.slug} already has this release version; push again`);
          }
          throw error;
        });
      this.logger.log(
        `fleet ${fleet.slug}: release v${release.version} stored (${services.length} services, ${uniqueSizes.size} layers)`,
      );
      this.events.pushed$.next(release);
      return {
        ...release,
        newLayers: [...new Set(diffIds)].filter((d) => !known.has(d)),
        format: archive.format,
      };
    } finally {
      await this.blobs.discard(staging);
    }
  }

  async list(fleetRef: string): Promise<Release[]> {
    return this.releases.listForFleet((await this.fleets.get(fleetRef)).id);
  }

  async get(id: string): Promise<Release> {
    const release = await this.releases.find(id);
    if (!release) throw new NotFoundError(`no release ${id}`);
    return release;
  }
}
